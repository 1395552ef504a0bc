"""The contract between metric sources (Zabbix API/DB, KCMM DB/CSV) and the ingest pipeline.

A source yields Arrow record batches that conform to `etl.schema.point_schema()`; the pipeline
validates, loads and counts them without knowing where they came from. Batches are built column-wise
from arrays of item ids, clocks and values plus one small per-item metadata table (`ItemCatalog`):
metadata columns are gathered with `take`, never assembled row by row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.schema import LOG, NUMERIC_TYPES, UINT, point_schema

if TYPE_CHECKING:
    from etl.config import Settings
    from etl.quarantine import Quarantine
    from etl.window import Window

# Upper bound on rows per yielded batch: keeps memory flat whatever the window size.
MAX_BATCH_ROWS = 50_000

RAW = "raw"
HOURLY = "1h"


@runtime_checkable
class PointSource(Protocol):
    name: str  # "zabbix" | "kcmm"
    mode: str  # "api" | "db" | "csv"

    def extract(self, window: "Window", run_id: str, quarantine: "Quarantine") -> Iterator[pa.RecordBatch]:
        """Points with clock in [window.start, window.end) (ns resolution), batches conforming to
        point_schema(), at most MAX_BATCH_ROWS rows each. Records that cannot be converted go to
        quarantine with a reason; one bad record never raises. One exception: kcmm/csv also yields
        rows older than window.start from export files that arrived late (never rows >= window.end),
        since a dropped file is read once (see etl/sources/kcmm_csv.py)."""
        ...

    def count(self, window: "Window", bucket: dt.timedelta) -> dict[dt.datetime, int]:
        """Points per bucket start (UTC, aligned to the epoch) in the source, for `monetl gaps`."""
        ...


@dataclass(frozen=True)
class ItemMeta:
    """What a point carries besides its time and value: the item and its host."""

    itemid: int
    host: str
    key: str
    value_type: int
    host_name: str | None = None
    host_groups: tuple[str, ...] = ()
    item_name: str | None = None
    units: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # item tags then host tags, (tag, value)


_META_COLUMNS = ("host", "host_name", "host_groups", "itemid", "key", "item_name", "units",
                 "value_type", "tags")


class ItemCatalog:
    """Per-item metadata as one Arrow table plus an itemid -> row lookup, built once per run.

    `itemids` and `value_types` are the table's columns as numpy arrays (planning groups 100,000
    items by them); `items` maps itemid -> ItemMeta. Built from ItemMeta objects (KCMM, tests) or,
    at fleet size, straight from columns (`from_table`: no per-item object until one is asked for)."""

    def __init__(self, source: str, items: Iterable[ItemMeta]):
        self.source = source
        by_id: dict[int, ItemMeta] = {}
        for item in items:
            by_id[int(item.itemid)] = item
        self.items: Mapping[int, ItemMeta] = by_id
        schema = point_schema()
        ordered = list(by_id.values())
        columns = {
            "host": [i.host for i in ordered],
            "host_name": [i.host_name for i in ordered],
            "host_groups": [list(i.host_groups) for i in ordered],
            "itemid": [i.itemid for i in ordered],
            "key": [i.key for i in ordered],
            "item_name": [i.item_name for i in ordered],
            "units": [i.units for i in ordered],
            "value_type": [i.value_type for i in ordered],
            "tags": [[{"tag": t, "value": v} for t, v in i.tags] for i in ordered],
        }
        self.table = pa.table({name: pa.array(columns[name], type=schema.field(name).type)
                               for name in _META_COLUMNS})
        self._index()

    @classmethod
    def from_table(cls, source: str, table: pa.Table) -> "ItemCatalog":
        """A catalog over a metadata table with the _META_COLUMNS of point_schema() and unique itemids."""
        schema = point_schema()
        catalog = cls.__new__(cls)
        catalog.source = source
        catalog.table = pa.table({name: table.column(name).cast(schema.field(name).type) for name in _META_COLUMNS})
        catalog._index()
        if len(catalog._sorted_ids) > 1 and (np.diff(catalog._sorted_ids) == 0).any():
            raise ValueError(f"{source} catalog table repeats an itemid")
        catalog.items = _TableItems(catalog)
        return catalog

    def _index(self) -> None:
        self.itemids = np.asarray(self.table.column("itemid").to_numpy(), dtype=np.int64)
        self.value_types = np.asarray(self.table.column("value_type").to_numpy(), dtype=np.int8)
        self._sorted_order = np.argsort(self.itemids, kind="stable")
        self._sorted_ids = self.itemids[self._sorted_order]

    def __len__(self) -> int:
        return len(self.itemids)

    def __contains__(self, itemid: int) -> bool:
        return int(itemid) in self.items

    def __getitem__(self, itemid: int) -> ItemMeta:
        return self.items[int(itemid)]

    def by_value_type(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for itemid, value_type in zip(self.itemids.tolist(), self.value_types.tolist()):
            out.setdefault(value_type, []).append(itemid)
        return out

    def rows_of(self, itemids: np.ndarray) -> np.ndarray:
        """Row positions in `table` for each itemid; -1 where the item is unknown."""
        itemids = np.asarray(itemids, dtype=np.int64)
        if len(self._sorted_ids) == 0:
            return np.full(len(itemids), -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, itemids)
        pos = np.clip(pos, 0, len(self._sorted_ids) - 1)
        found = self._sorted_ids[pos] == itemids
        return np.where(found, self._sorted_order[pos], -1).astype(np.int64)

    def value_types_of(self, itemids: np.ndarray) -> np.ndarray:
        """The catalog's value type of each itemid; -1 where the item is unknown."""
        rows = self.rows_of(itemids)
        out = np.full(len(rows), -1, dtype=np.int8)
        known = rows >= 0
        out[known] = self.value_types[rows[known]]
        return out


class _TableItems(Mapping):
    """itemid -> ItemMeta over a catalog's table, each built when asked for (on a bad value, say)."""

    def __init__(self, catalog: ItemCatalog):
        self._catalog = catalog

    def _row(self, itemid) -> int:
        return int(self._catalog.rows_of(np.array([int(itemid)]))[0])

    def __getitem__(self, itemid) -> ItemMeta:
        row = self._row(itemid)
        if row < 0:
            raise KeyError(itemid)
        r = self._catalog.table.slice(row, 1).to_pylist()[0]
        return ItemMeta(itemid=int(r["itemid"]), host=r["host"], key=r["key"], value_type=int(r["value_type"]),
                        host_name=r["host_name"], host_groups=tuple(r["host_groups"] or ()),
                        item_name=r["item_name"], units=r["units"],
                        tags=tuple((t["tag"], t["value"]) for t in r["tags"] or ()))

    def __contains__(self, itemid) -> bool:
        try:
            return self._row(itemid) >= 0
        except (TypeError, ValueError):
            return False

    def __iter__(self):
        return iter(self._catalog.itemids.tolist())

    def __len__(self) -> int:
        return len(self._catalog.itemids)


def _column(values, type_: pa.DataType, length: int) -> pa.Array:
    if values is None:
        return pa.nulls(length, type=type_)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return arr if arr.type == type_ else arr.cast(type_)
    return pa.array(values, type=type_)


def _const(value: str, n: int) -> pa.Array:
    """A string column of n copies of one value (gathered in C, no Python objects per row)."""
    return pa.array([value], type=pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


def build_points(catalog: ItemCatalog, *, itemid, clock, ns, run_id: str, value=None, value_text=None,
                 resolution: str = RAW, value_min=None, value_max=None, value_count=None, value_type=None,
                 value_uint=None, log_timestamp=None, log_source=None, log_severity=None,
                 log_eventid=None) -> pa.RecordBatch:
    """A point batch from columns (numpy arrays, Arrow arrays or lists) plus the item catalog.

    Every itemid must be in the catalog (callers drop or quarantine unknown ones first, see
    `split_known`). `value` is for numeric items, `value_text` for text items; the other stays null
    per row according to the point's value_type, so a caller may pass both from a mixed query.
    `value_type` (per row) is the type the value was stored under, when it differs from the item's
    current one (history written before an item.update changed it); default: the catalog's.
    `value_uint` is the exact unsigned value (kept for value_type 3 only); without it an unsigned
    point gets it from `value` where that float is an exact integer (0..2^53), else null, which
    validation rejects. The log_* columns are kept for value_type 2 only."""
    schema = point_schema()
    itemids = np.asarray(itemid, dtype=np.int64)
    n = len(itemids)
    rows = catalog.rows_of(itemids)
    if n and (rows < 0).any():
        missing = sorted(set(itemids[rows < 0].tolist()))[:5]
        raise ValueError(f"itemids not in the {catalog.source} catalog: {missing}")
    meta = catalog.table.take(pa.array(rows, type=pa.int64()))
    if value_type is not None:
        value_types = _column(np.asarray(value_type, dtype=np.int8), pa.int8(), n)
    else:
        value_types = meta.column("value_type").combine_chunks() if n else pa.array([], pa.int8())
    codes = np.asarray(value_types.to_numpy(zero_copy_only=False), dtype=np.int8)
    numeric = np.isin(codes, np.array(NUMERIC_TYPES, dtype=np.int8))
    value_arr = _column(value, pa.float64(), n)
    text_arr = _column(value_text, pa.string(), n)
    uint_rows = codes == UINT
    if not uint_rows.any():
        uint_arr = pa.nulls(n, pa.uint64())
    else:
        uint_arr = _only_where(_column(_exact_uint(value_arr) if value_uint is None else value_uint, pa.uint64(), n),
                               uint_rows)
    log_rows = codes == LOG
    # A numeric item never carries text and a text item never a number, whatever the caller passed.
    value_arr = pc.if_else(pa.array(numeric), value_arr, pa.scalar(None, pa.float64())) if n else value_arr
    text_arr = pc.if_else(pa.array(~numeric), text_arr, pa.scalar(None, pa.string())) if n else text_arr
    columns = {
        "source": _const(catalog.source, n),
        "value": value_arr,
        "value_uint": uint_arr,
        "value_text": text_arr,
        "log_timestamp": _only_where(_column(log_timestamp, pa.int64(), n), log_rows),
        "log_source": _only_where(_column(log_source, pa.string(), n), log_rows),
        "log_severity": _only_where(_column(log_severity, pa.int32(), n), log_rows),
        "log_eventid": _only_where(_column(log_eventid, pa.int64(), n), log_rows),
        "clock": _column(np.asarray(clock, dtype=np.int64), pa.int64(), n),
        "ns": _column(np.asarray(ns, dtype=np.int32), pa.int32(), n),
        "resolution": _const(resolution, n),
        "value_min": _column(value_min, pa.float64(), n),
        "value_max": _column(value_max, pa.float64(), n),
        "value_count": _column(value_count, pa.int64(), n),
        "run_id": _const(run_id, n),
    }
    for name in _META_COLUMNS:
        columns[name] = meta.column(name).combine_chunks() if n else pa.array([], schema.field(name).type)
    columns["value_type"] = value_types
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def _only_where(array: pa.Array, rows: np.ndarray) -> pa.Array:
    """`array` where `rows` is true, null elsewhere (a column that belongs to one value type)."""
    if len(array) == 0 or (array.null_count == len(array)):
        return array
    return pc.if_else(pa.array(rows), array, pa.scalar(None, array.type))


_EXACT_FLOAT_INT = float(2**53)


def _exact_uint(values: pa.Array) -> pa.Array:
    """uint64 from float64 where the float is an integer that float64 holds exactly (0..2^53):
    a source that only has floats (KCMM 0/1 counters) still gets an exact value_uint; anything
    else stays null rather than pretending to be exact."""
    if len(values) == 0:
        return pa.array([], pa.uint64())
    floats = values.to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(floats) & (floats >= 0) & (floats <= _EXACT_FLOAT_INT) & (np.floor(floats) == floats)
    ints = np.where(ok, floats, 0).astype(np.uint64)
    return pa.array(ints, type=pa.uint64(), mask=~ok)


def points_from_rows(catalog: ItemCatalog, rows: Sequence[dict], run_id: str,
                     resolution: str = RAW) -> pa.RecordBatch:
    """Convenience for small inputs (tests, replay): dicts with itemid, clock, ns and value or
    value_text (and value_min/value_max/value_count for trends)."""
    def col(name):
        return [r.get(name) for r in rows]

    def optional(name):
        return col(name) if any(r.get(name) is not None for r in rows) else None

    return build_points(catalog, itemid=col("itemid"), clock=col("clock"), ns=[r.get("ns", 0) for r in rows],
                        run_id=run_id, value=col("value"), value_text=col("value_text"), resolution=resolution,
                        value_min=col("value_min"), value_max=col("value_max"), value_count=col("value_count"),
                        value_type=col("value_type") if all(r.get("value_type") is not None for r in rows) else None,
                        value_uint=optional("value_uint"), log_timestamp=col("log_timestamp"),
                        log_source=col("log_source"), log_severity=col("log_severity"),
                        log_eventid=col("log_eventid"))


def empty_points() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in point_schema()], schema=point_schema())


def rebatch(batches: Iterable[pa.RecordBatch], max_rows: int = MAX_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches so none exceeds max_rows and tiny ones are merged; empty ones vanish."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(max_rows - pending_rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows >= max_rows:
                yield _concat(pending)
                pending, pending_rows = [], 0
    if pending_rows:
        yield _concat(pending)


def _concat(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def bucket_start(clock_s: int, bucket: dt.timedelta) -> dt.datetime:
    step = int(bucket.total_seconds())
    return dt.datetime.fromtimestamp(clock_s - clock_s % step, tz=dt.timezone.utc)


def bucket_starts(window: "Window", bucket: dt.timedelta) -> list[dt.datetime]:
    """Every bucket start (epoch-aligned) that overlaps the window, so empty buckets show as 0."""
    step = int(bucket.total_seconds())
    if step <= 0:
        raise ValueError("bucket must be at least one second")
    first = window.start_s - window.start_s % step
    end = window.end.timestamp()
    return [dt.datetime.fromtimestamp(s, tz=dt.timezone.utc) for s in range(first, int(end) + 1, step) if s < end]


def open_source(name: str, settings: "Settings", mode: str | None = None, **options) -> PointSource:
    """The point source `name` in `mode`. Defaults: zabbix -> "api", kcmm -> "db".

    options (keywords): hosts=[technical host / machine names], max_batch_rows=N; zabbix: itemids=[...],
    use_trends="auto"|"never"|"only", now=datetime (retention reference); zabbix api: row_budget,
    item_batch, timeout; zabbix db: fast_copy; kcmm: mapping (path), timezone; kcmm csv: csv_dir,
    state_path, settle_seconds. Every source also has close() and is a context manager."""
    from etl.errors import ConfigError

    if name == "zabbix":
        mode = mode or "api"
        if mode == "api":
            from etl.sources.zabbix_api import ZabbixApiSource
            return ZabbixApiSource(settings, **options)
        if mode == "db":
            from etl.sources.zabbix_db import ZabbixDbSource
            return ZabbixDbSource(settings, **options)
    elif name == "kcmm":
        mode = mode or "db"
        if mode == "db":
            from etl.sources.kcmm_db import KcmmDbSource
            return KcmmDbSource(settings, **options)
        if mode == "csv":
            from etl.sources.kcmm_csv import KcmmCsvSource
            return KcmmCsvSource(settings, **options)
    else:
        raise ConfigError(f"unknown point source {name!r}; known: zabbix, kcmm")
    raise ConfigError(f"source {name!r} has no mode {mode!r}; zabbix: api|db, kcmm: db|csv")
