"""Daily compaction: one day's points index in Elasticsearch -> a Parquet partition (+ 5m and 1h
rollups) in the lake, published atomically, verified against Elasticsearch, and only then is the
index deleted.

Verification compares the published partition, read back from the lake, with (a) the checksum and
per-item counts computed while scanning (stored in the manifest) and (b) what Elasticsearch reports
now through aggregations (total, per itemid: count, min and max clock). A document added or removed
after the scan, a tampered file or manifest: any difference raises VerificationError and the index
stays."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.config import Settings
from etl.errors import StoreError, VerificationError
from etl.health.push import reports
from etl.lake import es_scan, layout, manifest, publish, reader
from etl.lake.rollup import ROLLUP_SCHEMA_NAME, rollup
from etl.lake.storage import Storage, open_storage
from etl.quarantine import Quarantine
from etl.schema import point_schema, points_index, points_index_pattern

log = logging.getLogger(__name__)

VERIFY_COLUMNS = sorted(set(manifest.POINT_CHECKSUM_COLUMNS) | {"itemid", "clock"})
SORT_KEYS = [("host", "ascending"), ("itemid", "ascending"), ("clock", "ascending"), ("ns", "ascending")]


@dataclasses.dataclass
class Report:
    source: str
    day: dt.date
    index: str
    run_id: str
    lake_url: str
    rows: int = 0
    items: int = 0
    checksum: str = ""
    parquet_bytes: int = 0
    rollup_rows: dict = dataclasses.field(default_factory=dict)
    quarantined: int = 0
    verified: bool = False
    deleted: bool = False
    seconds: float = 0.0
    notes: list = dataclasses.field(default_factory=list)

    @property
    def partition(self) -> str:
        return f"{self.lake_url}/{layout.points_partition(self.source, self.day)}"

    def lines(self) -> list[str]:
        if not self.rollup_rows and self.notes:  # nothing was compacted in this run
            return [f"{self.source} {self.day}: {self.rows} points in {self.partition}"] + list(self.notes)
        out = [f"{self.source} {self.day}: {self.rows} points of {self.items} items from {self.index} "
               f"-> {self.partition} ({self.parquet_bytes} bytes, checksum {self.checksum})",
               "rollups: " + ", ".join(f"{k} {v} rows" for k, v in self.rollup_rows.items()),
               f"verified={self.verified} index deleted={self.deleted} in {self.seconds:.1f}s"]
        if self.quarantined:
            out.append(f"{self.quarantined} documents quarantined (run {self.run_id})")
        return out + list(self.notes)


@dataclasses.dataclass
class ScanResult:
    """A scanned day: in memory (`table`, unsorted) or, past the spill threshold, an unsorted
    Parquet file in the scratch folder (`spill_file`) that DuckDB sorts out of core."""
    rows: int
    checksum: int
    quarantined: int
    table: pa.Table | None = None
    spill_file: Path | None = None


# Days up to this many points are sorted in memory (~0.5 GB of Arrow for 4M points); bigger ones
# spill to a scratch file as they are scanned and are sorted by DuckDB within SPILL_MEMORY.
SPILL_ROWS = 4_000_000
SPILL_MEMORY = "1GB"


def scan_day(raw_es, index: str, quarantine: Quarantine, *, slices: int = 2, page_size: int = 5000,
             scratch: Path | None = None, spill_rows: int = SPILL_ROWS) -> ScanResult:
    """The whole index with the order-free checksum of every point; memory stays bounded."""
    import pyarrow.parquet as pq

    schema = point_schema()
    batches, checksum, rows, spill = [], 0, 0, None
    parse = functools.partial(es_scan.parse_points_page, schema=schema)
    try:
        for batch, rejected in es_scan.iter_pages(raw_es, index, parse, slices=slices, page_size=page_size):
            for hit, reason in rejected:
                quarantine.add(hit.get("_source"), reason, ref=f"{index}/{hit.get('_id')}", stage="compact")
            checksum = manifest.combine(checksum, manifest.checksum_int(batch, manifest.POINT_CHECKSUM_COLUMNS))
            rows += batch.num_rows
            batches.append(batch)
            if spill is None and scratch is not None and rows > spill_rows:
                spill = pq.ParquetWriter(scratch / "spill.parquet", schema, compression="lz4")
            if spill is not None:
                for pending in batches:
                    spill.write_batch(pending)
                batches = []
    finally:
        if spill is not None:
            spill.close()
    if spill is not None:
        return ScanResult(rows, checksum, quarantine.count, spill_file=scratch / "spill.parquet")
    # Unsorted: the caller sorts while the rollups (which need no order) are computed.
    table = pa.Table.from_batches(batches, schema=schema).combine_chunks()
    return ScanResult(rows, checksum, quarantine.count, table=table)


def write_sorted_from_spill(spill_file: Path, target: Path, scratch: Path) -> dict[str, int]:
    """Sort a spilled day out of core into the points Parquet file; returns rows per itemid."""
    import duckdb

    from etl.lake.publish import ROW_GROUP_ROWS
    from etl.lake.rollup import _quote

    con = duckdb.connect(config={"threads": 2, "memory_limit": SPILL_MEMORY,
                                 "temp_directory": str(scratch / "duckdb-tmp")})
    try:
        con.execute(f"CREATE VIEW points AS SELECT * FROM read_parquet({_quote(str(spill_file))})")
        con.execute(f"COPY (SELECT * FROM points ORDER BY host, itemid, clock, ns, resolution) TO "
                    f"{_quote(str(target))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        counts = con.execute("SELECT itemid, count(*) FROM points GROUP BY itemid").fetchall()
    finally:
        con.close()
    return {str(itemid): int(n) for itemid, n in counts}


def sort_points(table: pa.Table) -> pa.Table:
    """Sorted by (host, itemid, clock, ns) (then resolution, so raw and trend rows of the same
    instant have a fixed order). Sorting on the dense rank of host instead of the strings and
    gathering the columns in two threads is ~2x faster than Table.sort_by on a day of points."""
    if table.num_rows == 0:
        return table
    keys = pa.table({"host": pc.rank(table["host"], sort_keys="ascending", tiebreaker="dense"),
                     "itemid": table["itemid"], "clock": table["clock"], "ns": table["ns"],
                     "resolution": table["resolution"]})
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    with ThreadPoolExecutor(max_workers=2) as pool:
        columns = list(pool.map(lambda column: column.take(order), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _verify(es, index: str, storage: Storage, source: str, day: dt.date) -> tuple[int, str]:
    """Compare the published partition with its manifest and with Elasticsearch; raise on any
    difference. Returns (rows, checksum)."""
    partition = layout.points_partition(source, day)
    where = f"lake {storage.url}/{partition}"
    found = reader.read_manifest(storage, partition)
    if found is None:
        raise VerificationError(f"{where}: no manifest, partition not published")
    rows, lake_sum, lake_items, lake_clocks = _lake_stats(storage, partition)
    problems = []
    if rows != found["rows"]:
        problems.append(f"files hold {rows} rows, manifest says {found['rows']}")
    if lake_sum != found["checksum"]:
        problems.append(f"files checksum {lake_sum}, manifest says {found['checksum']}")
    if lake_items != found.get("rows_per_itemid"):
        problems.append("rows per itemid differ between files and manifest")
    es.indices.refresh(index=index)
    es_total = es_scan.count(es, index)
    es_items = es_scan.item_stats(es, index)
    if es_total != rows:
        problems.append(f"Elasticsearch index {index} holds {es_total} documents, lake {rows}")
    differing = sorted(set(es_items) ^ set(lake_items)) + sorted(
        i for i in set(es_items) & set(lake_items)
        if es_items[i]["rows"] != lake_items[i]
        or (es_items[i]["min_clock"], es_items[i]["max_clock"]) != lake_clocks[i])
    if differing:
        problems.append(f"{len(differing)} items differ from Elasticsearch (first itemids: {', '.join(differing[:5])})")
    if problems:
        raise VerificationError(f"{where} does not match index {index}: {'; '.join(problems)}; "
                                f"the index was kept")
    return rows, lake_sum


def _lake_stats(storage: Storage, partition: str) -> tuple[int, str, dict[str, int], dict[str, tuple[int, int]]]:
    """Rows, checksum, rows per itemid and (min, max) clock per itemid of a published partition,
    read back batch by batch, only the columns the checks need."""
    rows, checksum = 0, 0
    items: dict[str, int] = {}
    clocks: dict[str, tuple[int, int]] = {}
    for batch in reader.iter_partition_batches(storage, partition, VERIFY_COLUMNS):
        rows += batch.num_rows
        checksum = manifest.combine(checksum, manifest.checksum_int(batch, manifest.POINT_CHECKSUM_COLUMNS))
        grouped = pa.Table.from_batches([batch]).group_by("itemid").aggregate(
            [("itemid", "count"), ("clock", "min"), ("clock", "max")])
        for itemid, n, lo, hi in zip(*(grouped[c].to_pylist() for c in ("itemid", "itemid_count", "clock_min",
                                                                          "clock_max"))):
            key = str(itemid)
            items[key] = items.get(key, 0) + n
            old_lo, old_hi = clocks.get(key, (lo, hi))
            clocks[key] = (min(lo, old_lo), max(hi, old_hi))
    return rows, manifest.as_hex(checksum), items, clocks


@reports("verification")
def verify_day(settings: Settings, source: str, day: dt.date | str, *, storage: Storage | None = None,
               es=None) -> tuple[int, str]:
    """Verify an already published day against its index (raises VerificationError)."""
    from etl.search.client import es_client

    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    es = es or es_client(settings)
    return _verify(es, points_index(settings.es_index_prefix, source, day), storage or open_storage(settings),
                   source, day)


@reports("compaction")
def compact_day(settings: Settings, source: str, day: dt.date | str, delete: bool = True, *,
                storage: Storage | None = None, es=None, slices: int = 2, page_size: int = 5000,
                spill_rows: int = SPILL_ROWS) -> Report:
    """Compact one day of one source; delete its index only when the lake copy verifies."""
    from etl.search.client import es_client

    started = time.monotonic()
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    es = es or es_client(settings)
    storage = storage or open_storage(settings)
    index = points_index(settings.es_index_prefix, source, day)
    run_id = publish.new_run_id("compact")
    report = Report(source, day, index, run_id, storage.url)
    if not es.indices.exists(index=index):
        published = reader.read_manifest(storage, layout.points_partition(source, day))
        if published is not None:
            report.rows, report.checksum = published["rows"], published["checksum"]
            report.items, report.run_id = len(published.get("rows_per_itemid", {})), published["run_id"]
            report.notes.append(f"index {index} is gone and the day is in the lake (run {published['run_id']}): "
                                f"nothing to do")
            report.verified = True
            return report
        raise StoreError(f"index {index} does not exist and {source} {day} is not in the lake")
    publish.sweep_stale(storage)
    es.indices.refresh(index=index)
    date = f"{day:%Y-%m-%d}"
    try:
        with publish.scratch_dir(settings) as scratch_name:
            scratch = Path(scratch_name)
            with Quarantine(settings, "lake", run_id) as quarantine:
                scanned = scan_day(es_scan.raw_client(settings), index, quarantine, slices=slices,
                                   page_size=page_size, scratch=scratch, spill_rows=spill_rows)
                report.quarantined = quarantine.count
            points = scanned.table if scanned.table is not None else scanned.spill_file
            report.rows, report.checksum = scanned.rows, manifest.as_hex(scanned.checksum)

            def stage_rollup(resolution: str) -> tuple[str, str, int]:
                rolled = rollup(points, resolution, memory_limit=SPILL_MEMORY if scanned.spill_file else None)
                target = layout.rollup_partition(resolution, source, day)
                staging = layout.staging_path(run_id, target)
                publish.stage_partition(storage, staging, rolled, {
                    "dataset": layout.ROLLUPS[resolution], "partition": {"source": source, "date": date},
                    "run_id": run_id, "schema_name": ROLLUP_SCHEMA_NAME, "source_index": index},
                    scratch, manifest.ROLLUP_CHECKSUM_COLUMNS)
                return staging, target, rolled.num_rows

            # Rollups (DuckDB, any row order) run while the points are sorted and written (Arrow,
            # Parquet/ZSTD): all of it outside the GIL, so in parallel.
            with ThreadPoolExecutor(max_workers=2) as pool:
                rollups = {resolution: pool.submit(stage_rollup, resolution) for resolution in ("5m", "1h")}
                target = layout.points_partition(source, day)
                staging = layout.staging_path(run_id, target)
                meta = {"dataset": layout.POINTS, "partition": {"source": source, "date": date}, "run_id": run_id,
                        "schema_name": "point", "source_index": index, "checksum": scanned.checksum}
                if scanned.table is not None:
                    meta["per_item"] = manifest.rows_per_itemid(scanned.table)
                    built = publish.stage_partition(storage, staging, sort_points(scanned.table), meta, scratch,
                                                    manifest.POINT_CHECKSUM_COLUMNS)
                else:
                    built = publish.stage_written(
                        storage, staging, lambda path: write_sorted_from_spill(scanned.spill_file, path, scratch),
                        scanned.rows, meta, scratch)
                staged = []
                for resolution, future in rollups.items():
                    rollup_staging, rollup_target, report.rollup_rows[resolution] = future.result()
                    staged.append((rollup_staging, rollup_target))
            report.items = len(built.get("rows_per_itemid", {}))
            report.parquet_bytes = sum(f["bytes"] for f in built["files"])
            # Points last: a published points partition means its rollups are published too.
            staged.append((staging, target))
            for staging, target in staged:
                publish.publish(storage, staging, target, run_id)
    finally:
        publish.discard(storage, run_id)
    try:
        _verify(es, index, storage, source, day)
    except VerificationError as exc:
        log.error("verification of %s %s failed; index %s kept", source, day, index)
        if report.quarantined:
            raise VerificationError(f"{exc}; {report.quarantined} documents of the index were quarantined "
                                    f"as unusable (area lake, run {run_id})") from None
        raise
    report.verified = True
    if delete and day >= dt.datetime.now(dt.timezone.utc).date():
        report.notes.append(f"index {index} kept: {day} is not over yet")
    elif delete:
        es.indices.delete(index=index)
        report.deleted = True
        log.info("deleted index %s after verifying %d points of %d items (checksum %s) in %s",
                 index, report.rows, report.items, report.checksum, report.partition)
    report.seconds = time.monotonic() - started
    return report


def indexed_days(settings: Settings, es=None, source: str = "*") -> list[tuple[str, dt.date]]:
    """(source, day) of every daily points index under the prefix."""
    from etl.search.client import es_client

    es = es or es_client(settings)
    head = f"{settings.es_index_prefix}-points-"
    found = []
    for name in es.indices.get(index=points_index_pattern(settings.es_index_prefix, source),
                               expand_wildcards="open", ignore_unavailable=True, allow_no_indices=True):
        rest = name[len(head):]
        src, _, stamp = rest.rpartition("-")
        try:
            day = dt.datetime.strptime(stamp, "%Y.%m.%d").date()
        except ValueError:
            continue
        if src and name.startswith(head):
            found.append((src, day))
    return sorted(found)


def days_due(settings: Settings, es=None, source: str = "*", today: dt.date | None = None) -> list[tuple[str, dt.date]]:
    """Days older than the short-term retention that still have an index (not compacted and
    deleted yet)."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    cutoff = today - dt.timedelta(days=settings.short_term_days)
    return [(s, d) for s, d in indexed_days(settings, es, source) if d < cutoff]


def compact_older_than_retention(settings: Settings, source: str = "*", *, storage: Storage | None = None,
                                 es=None, today: dt.date | None = None, on_report=None) -> list[Report]:
    """Compact (and, verified, delete) every due day. A day that fails does not stop the others;
    the failures are raised together at the end, their indices kept."""
    from etl.search.client import es_client

    es = es or es_client(settings)
    reports, failures = [], []
    for s, d in days_due(settings, es, source, today):
        try:
            report = compact_day(settings, s, d, delete=True, storage=storage, es=es)
        except (VerificationError, StoreError) as exc:
            log.error("compaction of %s %s failed: %s", s, d, exc)
            failures.append(f"{s} {d}: {exc}")
            continue
        reports.append(report)
        if on_report is not None:
            on_report(report)
    if failures:
        raise VerificationError(f"{len(failures)} of {len(failures) + len(reports)} due days failed and keep "
                                f"their index: " + " | ".join(failures))
    return reports
