"""Quarantine: records that failed parsing, validation or loading, one JSON line each with the
reason, per area and run. Nothing bad is dropped silently; `monetl replay PATH` feeds them back.

Line format (schemas/quarantine.json): {"area", "run_id", "ref", "reason", "stage", "record"}.
`record` is what the replayer of that area needs to try again (a point, a raw log line, ...)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from etl.config import Settings

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _json_default(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


class Quarantine:
    """Appends bad records to <quarantine_dir>/<area>/<run_id>.jsonl; the file exists only if
    something was quarantined."""

    def __init__(self, settings: Settings, area: str, run_id: str):
        self.area = area
        self.run_id = run_id
        self.path = Path(settings.quarantine_dir) / _SAFE.sub("_", area) / f"{_SAFE.sub('_', run_id)}.jsonl"
        self.reasons: Counter[str] = Counter()
        self._fh = None

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def add(self, record, reason: str, ref: str = "", stage: str = "") -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        entry = {"area": self.area, "run_id": self.run_id, "ref": ref, "reason": reason,
                 "stage": stage, "record": record}
        self._fh.write(json.dumps(entry, ensure_ascii=False, default=_json_default) + "\n")
        # Reasons are grouped by their first clause so the summary stays short.
        self.reasons[reason.split(":")[0]] += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Quarantine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read(path: Path | str) -> Iterator[dict]:
    """Entries of one quarantine file, or of every *.jsonl under a folder."""
    path = Path(path)
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
