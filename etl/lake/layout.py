"""Where things live in the lake: Hive-style partition paths, relative to the lake root.

Partition values come from data (a source, a findings job), so each is percent-encoded as one path
segment: '/', '..', spaces, '%', ':' or Chinese characters can neither leave the layout nor collide
with another value, and decode back unchanged. Names starting with '_' or '.' are never data
(staging, trash, manifests): readers skip them."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, unquote

from etl.errors import ConfigError

POINTS = "points"
ROLLUPS = {"5m": "rollup_5m", "1h": "rollup_1h"}
FINDINGS = "findings"
STAGING = "_staging"
TRASH = "_trash"
MANIFEST = "_manifest.json"
PART = "part-{:05d}.parquet"


def encode_value(value: str) -> str:
    """One safe path segment for a partition value: everything outside [A-Za-z0-9_.-~] is %XX (UTF-8).

    A leading '.' is encoded too, so no segment is '.', '..' or hidden."""
    if not isinstance(value, str) or value == "":
        raise ConfigError(f"partition value {value!r} is empty or not text")
    encoded = quote(value, safe="")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def decode_value(segment: str) -> str:
    return unquote(segment, errors="strict")


def _day(day: dt.date | str) -> str:
    if isinstance(day, str):
        day = dt.date.fromisoformat(day)
    return f"{day:%Y-%m-%d}"


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p)


def points_partition(source: str, day: dt.date | str) -> str:
    return join(POINTS, f"source={encode_value(source)}", f"date={_day(day)}")


def rollup_partition(resolution: str, source: str, day: dt.date | str) -> str:
    if resolution not in ROLLUPS:
        raise ConfigError(f"unknown rollup resolution {resolution!r}; known: {', '.join(ROLLUPS)}")
    return join(ROLLUPS[resolution], f"source={encode_value(source)}", f"date={_day(day)}")


def findings_partition(job: str, day: dt.date | str) -> str:
    return join(FINDINGS, f"job={encode_value(job)}", f"date={_day(day)}")


def source_dir(dataset: str, source: str) -> str:
    """The folder holding every date partition of one source (dataset: points, rollup_5m, rollup_1h)."""
    return join(dataset, f"source={encode_value(source)}")


def parse_date_segment(segment: str) -> dt.date | None:
    """date=YYYY-MM-DD -> date; anything else (staging, manifests, stray files) -> None."""
    if not segment.startswith("date="):
        return None
    try:
        return dt.date.fromisoformat(segment[5:])
    except ValueError:
        return None


def is_data_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def staging_path(run_id: str, partition: str) -> str:
    return join(STAGING, encode_value(run_id), partition)


def trash_path(run_id: str, partition: str) -> str:
    return join(TRASH, encode_value(run_id), partition)
