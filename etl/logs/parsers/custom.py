"""User-defined log formats, no code: one JSON pattern file per format in schemas/logs/formats/
(or MONETL_LOG_FORMATS_DIR). The file names the dataset, a regular expression with named
captures, how each capture maps to an ECS field (and its type), and the timestamp format.
`--format NAME` (the file's stem) uses it, and `--format auto` recognises it by its `sniff`
expression (default: the pattern). The contract is in schemas/logs/formats/README.md."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from pathlib import Path

from etl.errors import ConfigError
from etl.logs.parsers.base import LineError, LineParser, ParseContext, iso_utc, put_address

FORMATS_DIR = Path(__file__).resolve().parents[3] / "schemas" / "logs" / "formats"
_DURATION_NS = {"seconds": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
TYPES = {"keyword", "integer", "float", "address", "url", *_DURATION_NS}


def formats_dir() -> Path:
    return Path(os.environ.get("MONETL_LOG_FORMATS_DIR") or FORMATS_DIR)


def _compile(spec: dict, file: Path) -> dict:
    for key in ("dataset", "pattern", "timestamp", "fields"):
        if key not in spec:
            raise ConfigError(f"log format {file}: lacks {key!r}")
    try:
        rx = re.compile(spec["pattern"])
        sniff = re.compile(spec.get("sniff") or spec["pattern"])
        skip = re.compile(spec["skip"]) if spec.get("skip") else None
    except re.error as exc:
        raise ConfigError(f"log format {file}: bad regular expression: {exc}") from None
    ts = spec["timestamp"]
    if not isinstance(ts, dict) or "capture" not in ts or "format" not in ts:
        raise ConfigError(f"log format {file}: timestamp needs 'capture' and 'format' (strptime)")
    names = set(rx.groupindex)
    mapped = []
    for capture, target in spec["fields"].items():
        if capture not in names:
            raise ConfigError(f"log format {file}: field {capture!r} is not a named capture of the pattern")
        if isinstance(target, str):
            target = {"field": target}
        kind = target.get("type", "keyword")
        if kind not in TYPES:
            raise ConfigError(f"log format {file}: type {kind!r} of {capture!r} is not one of {sorted(TYPES)}")
        mapped.append((capture, target["field"], kind))
    if ts["capture"] not in names:
        raise ConfigError(f"log format {file}: timestamp capture {ts['capture']!r} is not in the pattern")
    outcome = spec.get("outcome")
    if outcome and outcome.get("capture") not in names:
        raise ConfigError(f"log format {file}: outcome capture {outcome.get('capture')!r} is not in the pattern")
    return {"name": file.stem, "dataset": spec["dataset"], "rx": rx, "sniff": sniff, "skip": skip,
            "ts_capture": ts["capture"], "ts_format": ts["format"], "fields": mapped, "outcome": outcome,
            "constants": dict(spec.get("constants") or {})}


@functools.lru_cache(maxsize=8)
def _load_all(directory: str) -> dict[str, dict]:
    out = {}
    folder = Path(directory)
    if not folder.is_dir():
        return out
    for file in sorted(folder.glob("*.json")):
        try:
            spec = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read log format {file}: {exc}") from exc
        out[file.stem] = _compile(spec, file)
    return out


def custom_formats() -> dict[str, dict]:
    return _load_all(str(formats_dir()))


def custom_format_names() -> list[str]:
    return list(custom_formats())


def custom_parser_class(name: str):
    spec = custom_formats().get(name)
    if spec is None:
        return None
    return type(f"CustomParser_{name}", (CustomParser,), {"spec": spec, "dataset": spec["dataset"]})


def sniff_custom(sample: list[str]) -> str | None:
    for name, spec in custom_formats().items():
        lines = [line for line in sample if not (spec["skip"] and spec["skip"].search(line))]
        if lines and sum(1 for line in lines if spec["sniff"].search(line)) * 2 > len(lines):
            return name
    return None


def _url(doc: dict, field_name: str, value: str) -> None:
    doc[field_name] = value
    base = field_name.rsplit(".", 1)[0] if "." in field_name else "url"
    path, _, query = value.partition("?")
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    doc[f"{base}.path"] = path
    if query:
        doc[f"{base}.query"] = query


class CustomParser(LineParser):
    spec: dict = {}

    def parse(self, line: str) -> dict | None:
        spec = self.spec
        if not line.strip() or (spec["skip"] and spec["skip"].search(line)):
            return None
        m = spec["rx"].search(line)
        if m is None:
            raise LineError(f"does not match the {spec['name']} pattern")
        stamp = m.group(spec["ts_capture"])
        try:
            moment = dt.datetime.strptime(stamp, spec["ts_format"])
        except (TypeError, ValueError) as exc:
            raise LineError(f"timestamp {stamp!r} does not fit {spec['ts_format']!r}: {exc}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.ctx.tz)
        doc: dict = {"@timestamp": iso_utc(moment), **spec["constants"]}
        for capture, target, kind in spec["fields"]:
            value = m.group(capture)
            if value is None or value == "" or value == "-":
                continue
            try:
                if kind == "keyword":
                    doc[target] = value
                elif kind == "integer":
                    doc[target] = int(value)
                elif kind == "float":
                    doc[target] = float(value)
                elif kind == "address":
                    put_address(doc, value, target.rsplit(".", 1)[0] if target.endswith((".ip", ".address")) else target)
                elif kind == "url":
                    _url(doc, target, value)
                else:
                    doc[target] = int(round(float(value) * _DURATION_NS[kind]))
            except ValueError:
                raise LineError(f"{capture} {value!r} is not a {kind}") from None
        outcome = spec["outcome"]
        if outcome:
            value = m.group(outcome["capture"])
            if value is not None and value.isdigit():
                doc["event.outcome"] = "failure" if int(value) >= outcome.get("failure_from", 500) else "success"
        return doc


__all__ = ["CustomParser", "custom_format_names", "custom_parser_class", "sniff_custom", "ParseContext"]
