"""Loads the data contracts in schemas/ (JSON field lists) as Arrow schemas, and the naming rules
shared by every store: deterministic point ids and index names."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path

import pyarrow as pa

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

_SCALARS = {
    "string": pa.string(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint64": pa.uint64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp_ns_utc": pa.timestamp("ns", tz="UTC"),
    "timestamp_us_utc": pa.timestamp("us", tz="UTC"),
}


_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def _split_top(text: str) -> list[str]:
    """Split 'a:string,b:list<string>' on commas that are not inside <...>."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return [p.strip() for p in parts]


def arrow_type(spec: str) -> pa.DataType:
    spec = spec.strip()
    if spec in _SCALARS:
        return _SCALARS[spec]
    if match := _DECIMAL.match(spec):
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(arrow_type(spec[5:-1]))
    if spec.startswith("struct<") and spec.endswith(">"):
        members = []
        for part in _split_top(spec[7:-1]):
            name, _, sub = part.partition(":")
            members.append(pa.field(name.strip(), arrow_type(sub)))
        return pa.struct(members)
    raise ValueError(f"unknown type {spec!r} in a schema file")


@functools.cache
def contract(name: str) -> dict:
    """The raw JSON of schemas/<name>.json."""
    return json.loads((SCHEMAS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@functools.cache
def arrow_schema(name: str) -> pa.Schema:
    spec = contract(name)
    return pa.schema(
        [pa.field(f["name"], arrow_type(f["type"]), nullable=f.get("nullable", True)) for f in spec["fields"]],
        metadata={"monetl.schema": name, "monetl.schema_version": str(spec["version"])},
    )


def point_schema() -> pa.Schema:
    return arrow_schema("point")


# Zabbix value_type codes.
FLOAT, CHAR, LOG, UINT, TEXT = 0, 1, 2, 3, 4
NUMERIC_TYPES = (FLOAT, UINT)
TEXT_TYPES = (CHAR, LOG, TEXT)
UINT64_MAX = 2**64 - 1


def point_id(source: str, itemid: int, clock: int, ns: int, resolution: str = "raw") -> str:
    """Deterministic document id: a re-run overwrites the same document, never adds one."""
    base = f"{source}:{itemid}:{clock}:{ns}"
    return base if resolution == "raw" else f"{base}:{resolution}"


def points_index(prefix: str, source: str, day: dt.date) -> str:
    """Daily index per source, by the point's UTC date (see schemas/es/README in the store layer)."""
    return f"{prefix}-points-{source}-{day:%Y.%m.%d}"


def points_index_pattern(prefix: str, source: str = "*") -> str:
    return f"{prefix}-points-{source}-*"
