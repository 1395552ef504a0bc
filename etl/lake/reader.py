"""Reading the lake: points (raw or rollups) and log findings, by window, with partition pruning
(only the date partitions the window touches) and filter pushdown (pyarrow.dataset over the
partition's Parquet files). Works the same on a local lake and on HDFS (files are fetched through
the storage interface into a scratch folder first)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from etl.config import Settings
from etl.errors import ConfigError
from etl.lake import layout, manifest
from etl.lake.rollup import rollup_schema
from etl.lake.storage import Storage, open_storage
from etl.schema import point_schema
from etl.window import Window

RESOLUTIONS = ("raw", "5m", "1h")


def partition_files(storage: Storage, partition: str) -> list[str]:
    """Data files of a published partition (staging, trash and _-prefixed names are never data)."""
    return [layout.join(partition, name) for name in storage.list(partition) if layout.is_data_file(name)]


def read_files(storage: Storage, files: list[str], schema: pa.Schema | None, filter=None,
               columns: list[str] | None = None) -> pa.Table:
    if schema is not None and columns:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    if not files:
        return schema.empty_table() if schema is not None else pa.table({})
    local = [storage.local_path(f) for f in files]
    if all(p is not None for p in local):
        return _scan([str(p) for p in local], schema, filter)
    with tempfile.TemporaryDirectory(prefix="monetl-lake-read-") as scratch:
        paths = []
        for i, rel in enumerate(files):
            dest = Path(scratch) / f"{i:05d}.parquet"
            storage.download(rel, dest)
            paths.append(str(dest))
        # Materialised before the scratch folder goes away.
        return _scan(paths, schema, filter)


def _scan(paths: list[str], schema: pa.Schema | None, filter) -> pa.Table:
    dataset = ds.dataset(paths, format="parquet", schema=schema)
    table = dataset.to_table(filter=filter, columns=schema.names if schema is not None else None)
    return table.cast(schema) if schema is not None else table


def read_partition(storage: Storage, partition: str, schema: pa.Schema | None = None,
                   columns: list[str] | None = None) -> pa.Table:
    return read_files(storage, partition_files(storage, partition), schema, columns=columns)


def iter_partition_batches(storage: Storage, partition: str, columns: list[str], batch_rows: int = 262_144):
    """The partition's rows as record batches, one file at a time (bounded memory on any size)."""
    import pyarrow.parquet as pq

    for rel in partition_files(storage, partition):
        local = storage.local_path(rel)
        if local is not None:
            yield from pq.ParquetFile(local).iter_batches(batch_size=batch_rows, columns=columns)
            continue
        with tempfile.TemporaryDirectory(prefix="monetl-lake-read-") as scratch:
            dest = Path(scratch) / "part.parquet"
            storage.download(rel, dest)
            yield from pq.ParquetFile(dest).iter_batches(batch_size=batch_rows, columns=columns)


def read_manifest(storage: Storage, partition: str) -> dict | None:
    rel = layout.join(partition, layout.MANIFEST)
    if not storage.exists(rel):
        return None
    return manifest.loads(storage.read_bytes(rel), f"lake {storage.url}/{partition}")


def published_days(storage: Storage, source: str, dataset: str = layout.POINTS) -> set[dt.date]:
    """Days of `source` with a complete published partition (one that has its manifest)."""
    folder = layout.source_dir(dataset, source)
    days = set()
    for segment in storage.list(folder):
        day = layout.parse_date_segment(segment)
        if day is not None and storage.exists(layout.join(folder, segment, layout.MANIFEST)):
            days.add(day)
    return days


def _window_filter(window: Window, time_column: str):
    """Whole seconds, inclusive at the end: `_exact_window` then cuts at nanoseconds."""
    t = ds.field(time_column)
    return (t >= window.start_s) & (t <= window.end_s)


def _exact_window(table: pa.Table, window: Window, time_column: str, with_ns: bool) -> pa.Table:
    """Trim to [start, end) at nanosecond precision (the pushdown filter works on whole seconds)."""
    if table.num_rows == 0:
        return table
    ts = pc.multiply(table[time_column].cast(pa.int64()), 1_000_000_000)
    if with_ns:
        ts = pc.add(ts, table["ns"].cast(pa.int64()))
    keep = pc.and_(pc.greater_equal(ts, window.start_ns), pc.less(ts, window.end_ns))
    return table.filter(keep)


def read_points(settings: Settings, source: str, window: Window, resolution: str = "raw",
                hosts=None, itemids=None, *, keys=None, storage: Storage | None = None) -> pa.Table:
    """Points of `source` in `window` ([start, end) UTC) from the lake: raw points (point schema),
    or rollups at 5m / 1h (lake/rollup schema; a bucket belongs to the window its start is in).
    Sorted by host, itemid, time."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution {resolution!r}: use one of {', '.join(RESOLUTIONS)}")
    storage = storage or open_storage(settings)
    raw = resolution == "raw"
    schema = point_schema() if raw else rollup_schema()
    time_column = "clock" if raw else "bucket"
    filter = _window_filter(window, time_column)
    if hosts:
        filter = filter & ds.field("host").isin(list(hosts))
    if itemids:
        filter = filter & ds.field("itemid").isin([int(i) for i in itemids])
    if keys:
        filter = filter & ds.field("key").isin(list(keys))
    files = []
    for day in window.days():
        partition = (layout.points_partition(source, day) if raw
                     else layout.rollup_partition(resolution, source, day))
        files += partition_files(storage, partition)
    table = _exact_window(read_files(storage, files, schema, filter), window, time_column, raw)
    keys = [("host", "ascending"), ("itemid", "ascending"), (time_column, "ascending")]
    if raw:
        keys.append(("ns", "ascending"))
    return table.sort_by(keys) if table.num_rows else table


def read_findings(settings: Settings, job: str, window: Window, *, storage: Storage | None = None) -> pa.Table:
    """Findings of a log-analysis job from the date partitions the window touches."""
    storage = storage or open_storage(settings)
    files = []
    for day in window.days():
        files += partition_files(storage, layout.findings_partition(job, day))
    if not files:
        return pa.table({})
    tables = [read_files(storage, [f], None) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")
