"""Partition manifests (_manifest.json, contract schemas/lake/manifest.json) and the order-free
checksums they carry: sum mod 2^64 of a 64-bit hash per row, so a scan in any order (sliced PIT,
search_after pages) and the sorted Parquet file give the same number."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pyarrow as pa

from etl.errors import VerificationError
from etl.schema import contract

MANIFEST_VERSION = 1
# What identifies a point and what it says: two points differing in any of these differ in the sum.
POINT_CHECKSUM_COLUMNS = ("itemid", "clock", "ns", "resolution", "value", "value_text",
                          "value_min", "value_max", "value_count")
ROLLUP_CHECKSUM_COLUMNS = ("itemid", "bucket", "min", "max", "sum", "count", "last")

_NULL = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_text(value) -> int:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_P = 0x100000001B3  # odd, so it has an inverse mod 2^64
_P_INV = pow(_P, -1, 1 << 64)
_TEXT_CHUNK = 65_536


def _text_hashes(array: pa.Array) -> np.ndarray:
    """Polynomial hash mod 2^64 of each value's UTF-8 bytes (sum of (byte+1) * P^position), all in
    numpy: prefix sums over the data buffer, differences per value, shifted back by P^-start."""
    width = np.int64 if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=width)[array.offset:array.offset + len(array) + 1].astype(np.int64)
    base, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    data_buffer = array.buffers()[2]
    data = (np.frombuffer(data_buffer, dtype=np.uint8)[base:base + total] if total else np.zeros(0, np.uint8))
    starts, ends = offsets[:-1] - base, offsets[1:] - base
    with np.errstate(over="ignore"):
        powers = np.full(total + 1, _P, dtype=np.uint64)
        powers[0] = 1
        powers = np.cumprod(powers, dtype=np.uint64)  # P^j, wrapping
        inverse = np.full(total + 1, _P_INV, dtype=np.uint64)
        inverse[0] = 1
        inverse = np.cumprod(inverse, dtype=np.uint64)  # P^-j
        prefix = np.zeros(total + 1, dtype=np.uint64)
        np.cumsum((data.astype(np.uint64) + np.uint64(1)) * powers[:total], dtype=np.uint64, out=prefix[1:])
        spans = (prefix[ends] - prefix[starts]) * inverse[starts]
        return spans ^ (ends - starts).astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)


def column_hash(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One uint64 per row; nulls hash to a constant that no real value is likely to take."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    kind = column.type
    valid = (np.ones(n, dtype=bool) if column.null_count == 0
             else column.is_valid().to_numpy(zero_copy_only=False))
    if pa.types.is_floating(kind):
        bits = column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False).view(np.uint64)
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_temporal(kind):
        if pa.types.is_date32(kind) or pa.types.is_time32(kind):
            column = column.view(pa.int32())
        elif pa.types.is_temporal(kind):
            column = column.view(pa.int64())
        ints = column.cast(pa.int64())
        bits = ints.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        if column.null_count == n:
            return np.full(n, _NULL, dtype=np.uint64)
        bits = np.concatenate([_text_hashes(column.slice(i, _TEXT_CHUNK)) for i in range(0, n, _TEXT_CHUNK)]) \
            if n else np.zeros(0, dtype=np.uint64)
    else:  # nested (lists, structs): rare and small here
        bits = np.array([_hash_text(json.dumps(v, sort_keys=True, ensure_ascii=False, default=str))
                         for v in column.to_pylist()], dtype=np.uint64)
    bits = _mix(bits)
    return np.where(valid, bits, _NULL)


def row_hashes(table: pa.Table | pa.RecordBatch, columns) -> np.ndarray:
    h = np.full(table.num_rows, np.uint64(0x2545F4914F6CDD1D), dtype=np.uint64)
    for position, name in enumerate(columns):
        h = _mix(h ^ (column_hash(table.column(name)) + np.uint64(position + 1)))
    return h


def checksum_int(table: pa.Table | pa.RecordBatch, columns) -> int:
    with np.errstate(over="ignore"):
        return int(row_hashes(table, columns).sum(dtype=np.uint64)) if table.num_rows else 0


def combine(*checksums: int) -> int:
    return sum(checksums) & _MASK


def as_hex(value: int) -> str:
    return f"{value & _MASK:016x}"


def rows_per_itemid(table: pa.Table) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    counts = table.group_by("itemid").aggregate([("itemid", "count")])
    return {str(i): int(c) for i, c in zip(counts["itemid"].to_pylist(), counts["itemid_count"].to_pylist())}


def build(dataset: str, partition: dict[str, str], run_id: str, schema_name: str, rows: int,
          checksum: int, files: list[dict], *, per_item: dict[str, int] | None = None,
          source_index: str | None = None, schema_version: int | None = None, extra: dict | None = None) -> dict:
    """`extra`: optional sections of a points manifest ("merge": what a merge with the previous
    lake copy kept and replaced; "reconciliation": the source counts taken before compaction)."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset,
        "partition": partition,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source_index": source_index,
        "schema": schema_name,
        "schema_version": int(schema_version if schema_version is not None else contract(schema_name)["version"]),
        "rows": int(rows),
        "checksum": as_hex(checksum),
        "files": files,
    }
    if per_item is not None:
        manifest["rows_per_itemid"] = per_item
    for name, section in (extra or {}).items():
        manifest[name] = section
    validate(manifest, "new manifest")
    return manifest


def validate(manifest: dict, where: str) -> dict:
    import jsonschema

    try:
        jsonschema.validate(manifest, contract("lake/manifest"))
    except jsonschema.ValidationError as exc:
        raise VerificationError(f"{where}: manifest breaks schemas/lake/manifest.json: {exc.message}") from None
    return manifest


def dumps(manifest: dict) -> bytes:
    return json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


def loads(data: bytes, where: str) -> dict:
    try:
        return validate(json.loads(data.decode("utf-8")), where)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{where}: manifest is not JSON: {exc}") from None
