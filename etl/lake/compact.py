"""Daily compaction: one day's points index in Elasticsearch -> a Parquet partition (+ 5m and 1h
rollups) in the lake, published atomically, verified against Elasticsearch, and only then is the
index deleted.

Verification compares the published partition, read back from the lake, with (a) the checksum and
per-item counts computed while scanning (stored in the manifest) and (b) what Elasticsearch reports
now through aggregations (total, per itemid: count, min and max clock), plus the rows a merge kept
from the previous lake copy and the source counts of the reconciliation (etl/lake/reconcile.py). A
tampered file or manifest, a point short of the source: any difference raises VerificationError
and the index stays. The index is write-blocked from the scan to the delete (etl/lake/write_block.py),
so nothing can land in it unseen; a day the lake already holds is merged, never replaced by a
fragment (replace=True rebuilds it from the index alone and logs what goes)."""

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
from etl.errors import StoreError, VerificationError, WouldDropPointsError
from etl.health.push import reports
from etl.lake import es_scan, layout, manifest, publish, reader, write_block
from etl.lake import reconcile as reconciliation
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
    """Compare the published partition with its manifest, with Elasticsearch (the index's rows
    plus the rows a merge kept from the previous lake copy, per item) and with the source counts of
    the reconciliation the manifest records; raise on any difference. Returns (rows, checksum)."""
    partition = layout.points_partition(source, day)
    where = f"lake {storage.url}/{partition}"
    found = reader.read_manifest(storage, partition)
    if found is None:
        raise VerificationError(f"{where}: no manifest, partition not published")
    step = int((found.get("reconciliation") or {}).get("bucket_seconds") or 3600)
    rows, lake_sum, lake_items, lake_clocks, lake_buckets = _lake_stats(storage, partition, step)
    problems = []
    if rows != found["rows"]:
        problems.append(f"files hold {rows} rows, manifest says {found['rows']}")
    if lake_sum != found["checksum"]:
        problems.append(f"files checksum {lake_sum}, manifest says {found['checksum']}")
    if lake_items != found.get("rows_per_itemid"):
        problems.append("rows per itemid differ between files and manifest")
    merge = found.get("merge") or {}
    kept = merge.get("kept_per_itemid") or {}
    es.indices.refresh(index=index)
    es_total = es_scan.count(es, index)
    es_items = es_scan.item_stats(es, index)
    kept_rows = int(merge.get("kept_rows", 0))
    if es_total + kept_rows != rows:
        problems.append(f"Elasticsearch index {index} holds {es_total} documents"
                        + (f" and the merge kept {kept_rows} from the lake" if kept_rows else "") + f", lake {rows}")

    def differs(i: str) -> bool:
        if i not in es_items:
            return lake_items.get(i, 0) != kept.get(i, 0) or not kept.get(i)
        if i not in lake_items or es_items[i]["rows"] + kept.get(i, 0) != lake_items[i]:
            return True
        lo, hi = lake_clocks[i]
        if kept.get(i):  # the lake also holds older rows of the item: the index's range lies inside
            return not (lo <= es_items[i]["min_clock"] and es_items[i]["max_clock"] <= hi)
        return (es_items[i]["min_clock"], es_items[i]["max_clock"]) != (lo, hi)

    differing = sorted(i for i in set(es_items) | set(lake_items) if differs(i))
    if differing:
        problems.append(f"{len(differing)} items differ from Elasticsearch (first itemids: {', '.join(differing[:5])})")
    if found.get("reconciliation"):
        short = reconciliation.shortfalls(found["reconciliation"], lake_buckets)
        if short:
            problems.append(f"{len(short)} buckets hold fewer points than the source counted ({'; '.join(short[:3])})")
    if problems:
        raise VerificationError(f"{where} does not match index {index}: {'; '.join(problems)}; "
                                f"the index was kept")
    return rows, lake_sum


def _lake_stats(storage: Storage, partition: str, step: int = 3600
                ) -> tuple[int, str, dict[str, int], dict[str, tuple[int, int]], dict[int, int]]:
    """Rows, checksum, rows per itemid, (min, max) clock per itemid and rows per time bucket of
    `step` seconds of a published partition, read back batch by batch, only the needed columns."""
    rows, checksum = 0, 0
    items: dict[str, int] = {}
    clocks: dict[str, tuple[int, int]] = {}
    buckets: dict[int, int] = {}
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
        clock = batch.column("clock").cast(pa.int64())
        starts = pc.multiply(pc.divide(clock, step), step)  # integer division: whole buckets
        for entry in pc.value_counts(starts).to_pylist():
            buckets[int(entry["values"])] = buckets.get(int(entry["values"]), 0) + int(entry["counts"])
    return rows, manifest.as_hex(checksum), items, clocks, buckets


@reports("verification")
def verify_day(settings: Settings, source: str, day: dt.date | str, *, storage: Storage | None = None,
               es=None) -> tuple[int, str]:
    """Verify an already published day against its index (raises VerificationError)."""
    from etl.search.client import es_client

    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    es = es or es_client(settings)
    return _verify(es, points_index(settings.es_index_prefix, source, day), storage or open_storage(settings),
                   source, day)


@dataclasses.dataclass
class Merged:
    """The index's rows plus the rows of the published partition the index does not hold."""
    spill_file: Path
    rows: int
    checksum: int
    record: dict            # manifest "merge" record
    index_items: dict[str, int]


def merge_with_published(scanned: ScanResult, storage: Storage, partition: str, previous: dict,
                         scratch: Path) -> Merged:
    """One row per point id (itemid, clock, ns, resolution); where both hold a point the index's
    version wins. Out of core (DuckDB within SPILL_MEMORY). The previous partition must read back
    exactly as its manifest says (rows, checksum), else the merge is refused: `--replace` rebuilds
    the day from the index alone."""
    import duckdb
    import pyarrow.parquet as pq

    from etl.lake.rollup import _quote

    schema = point_schema()
    if scanned.spill_file is not None:
        index_file = scanned.spill_file
    else:
        index_file = scratch / "index.parquet"
        pq.write_table(scanned.table, index_file, compression="lz4")
    old_files = []
    for n, rel in enumerate(reader.partition_files(storage, partition)):
        local = storage.local_path(rel)
        if local is None:
            local = scratch / f"previous-{n:05d}.parquet"
            storage.download(rel, local)
        old_files.append(str(local))
    key = "o.itemid = i.itemid AND o.clock = i.clock AND o.ns = i.ns AND o.resolution = i.resolution"
    con = duckdb.connect(config={"threads": 2, "memory_limit": SPILL_MEMORY,
                                 "temp_directory": str(scratch / "duckdb-tmp")})
    try:
        con.execute(f"CREATE VIEW idx AS SELECT * FROM read_parquet({_quote(str(index_file))})")
        files = "[" + ", ".join(_quote(f) for f in old_files) + "]" if old_files else None
        if files:
            con.execute(f"CREATE VIEW old AS SELECT * FROM read_parquet({files}, union_by_name = true)")
        else:
            con.execute("CREATE VIEW old AS SELECT * FROM idx WHERE false")
        kept_file, replaced_file = scratch / "kept.parquet", scratch / "replaced.parquet"
        con.execute(f"COPY (SELECT o.* FROM old o ANTI JOIN idx i ON {key}) TO {_quote(str(kept_file))} "
                    "(FORMAT parquet, COMPRESSION lz4)")
        con.execute(f"COPY (SELECT o.* FROM old o SEMI JOIN idx i ON {key}) TO {_quote(str(replaced_file))} "
                    "(FORMAT parquet, COMPRESSION lz4)")
        changed = con.execute(
            f"SELECT count(*) FROM old o JOIN idx i ON {key} WHERE o.value IS DISTINCT FROM i.value "
            "OR o.value_text IS DISTINCT FROM i.value_text OR o.value_min IS DISTINCT FROM i.value_min "
            "OR o.value_max IS DISTINCT FROM i.value_max OR o.value_count IS DISTINCT FROM i.value_count").fetchone()[0]
        index_items = {str(i): int(n) for i, n in con.execute("SELECT itemid, count(*) FROM idx GROUP BY 1").fetchall()}
    finally:
        con.close()

    def aligned(path: Path):
        """Batches of an older partition in today's point schema (new nullable columns as nulls)."""
        for batch in pq.ParquetFile(path).iter_batches(batch_size=262_144):
            columns = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
                       else pa.nulls(batch.num_rows, f.type) for f in schema]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    replaced_rows, replaced_sum = 0, 0
    for batch in aligned(replaced_file):
        replaced_rows += batch.num_rows
        replaced_sum = manifest.combine(replaced_sum, manifest.checksum_int(batch, manifest.POINT_CHECKSUM_COLUMNS))
    merged_file = scratch / "merged.parquet"
    kept_rows, kept_sum, kept_items = 0, 0, {}
    with pq.ParquetWriter(merged_file, schema, compression="lz4") as out:
        for batch in pq.ParquetFile(index_file).iter_batches(batch_size=262_144):
            out.write_batch(batch)
        for batch in aligned(kept_file):
            kept_rows += batch.num_rows
            kept_sum = manifest.combine(kept_sum, manifest.checksum_int(batch, manifest.POINT_CHECKSUM_COLUMNS))
            for itemid, n in manifest.rows_per_itemid(pa.Table.from_batches([batch])).items():
                kept_items[itemid] = kept_items.get(itemid, 0) + n
            out.write_batch(batch)
    where = f"lake {storage.url}/{partition}"
    if kept_rows + replaced_rows != previous["rows"] or \
            manifest.as_hex(manifest.combine(kept_sum, replaced_sum)) != previous["checksum"]:
        raise WouldDropPointsError(
            f"{where} (run {previous['run_id']}) does not read back as its manifest says "
            f"({kept_rows + replaced_rows} rows, manifest {previous['rows']}): cannot merge it safely; "
            f"rebuild the day from the index alone with --replace (drops what only the lake held)")
    record = {"previous_run_id": previous["run_id"], "previous_rows": int(previous["rows"]),
              "previous_checksum": previous["checksum"], "index_rows": scanned.rows,
              "index_checksum": manifest.as_hex(scanned.checksum), "kept_rows": kept_rows,
              "replaced_rows": replaced_rows, "changed_rows": int(changed), "kept_per_itemid": kept_items}
    return Merged(merged_file, scanned.rows + kept_rows, manifest.combine(scanned.checksum, kept_sum), record,
                  index_items)


def fewer_points(previous_items: dict[str, int], index_items: dict[str, int],
                 new_items: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Items the new partition would hold fewer points of than the lake or the index held:
    itemid -> (lake, index, new)."""
    out = {}
    for itemid in sorted(set(previous_items) | set(index_items), key=lambda i: (len(i), i)):
        lake_n, index_n, new_n = previous_items.get(itemid, 0), index_items.get(itemid, 0), new_items.get(itemid, 0)
        if new_n < max(lake_n, index_n):
            out[itemid] = (lake_n, index_n, new_n)
    return out


def describe_loss(loss: dict[str, tuple[int, int, int]], limit: int = 10) -> str:
    points = sum(max(lake_n, index_n) - new_n for lake_n, index_n, new_n in loss.values())
    shown = ", ".join(f"item {i}: lake {a}, index {b}, new {c}" for i, (a, b, c) in list(loss.items())[:limit])
    more = f" and {len(loss) - limit} more items" if len(loss) > limit else ""
    return f"{points} points of {len(loss)} items ({shown}{more})"


def _horizon_end(settings: Settings, day: dt.date) -> dt.datetime:
    """When a day may be compacted for good: its end plus the late-value horizon."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return end + dt.timedelta(hours=settings.late_horizon_hours)


@reports("compaction")
def compact_day(settings: Settings, source: str, day: dt.date | str, delete: bool = True, *,
                replace: bool = False, reconcile: bool = False, mode: str | None = None,
                hosts: list[str] | None = None, storage: Storage | None = None, es=None, slices: int = 2,
                page_size: int = 5000, spill_rows: int = SPILL_ROWS) -> Report:
    """Compact one day of one source; delete its index only when the lake copy verifies.

    A day the lake already holds is merged with the index (one row per point id, the index's
    version wins), so the lake day never loses a point it had. replace=True rebuilds the day from
    the index alone and logs what goes. reconcile=True first counts the day at the source
    (`mode`, narrowed to `hosts`), backfills what the store lacks and records the counts in the
    manifest, which verification then checks. The index is write-blocked from the scan to the
    delete, and unblocked again on any failure."""
    from etl.search.client import es_client

    started = time.monotonic()
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    es = es or es_client(settings)
    storage = storage or open_storage(settings)
    index = points_index(settings.es_index_prefix, source, day)
    run_id = publish.new_run_id("compact")
    report = Report(source, day, index, run_id, storage.url)
    partition = layout.points_partition(source, day)
    if es.indices.exists(index=index):
        stale = write_block.holder(es, index)
        if stale is not None:  # a killed compaction of this day left it; this run takes the day over
            log.warning("index %s still carries the write block of run %s (since %s): lifting it",
                        index, stale.get("run_id"), stale.get("since"))
            write_block.lift(es, index)
    record = None
    if reconcile:
        record = reconciliation.reconcile_day(settings, source, day, mode=mode, hosts=hosts, client=es)
        report.notes.append(f"reconciled with the source: {record['source_points']} points counted, "
                            f"{record['missing_before']} missing, {record['backfilled']} backfilled, "
                            f"{record['missing_after']} still missing")
    if not es.indices.exists(index=index):
        published = reader.read_manifest(storage, partition)
        if published is not None:
            report.rows, report.checksum = published["rows"], published["checksum"]
            report.items, report.run_id = len(published.get("rows_per_itemid", {})), published["run_id"]
            report.notes.append(f"index {index} is gone and the day is in the lake (run {published['run_id']}): "
                                f"nothing to do")
            report.verified = True
            return report
        raise StoreError(f"index {index} does not exist and {source} {day} is not in the lake")
    publish.sweep_stale(storage)
    previous = reader.read_manifest(storage, partition)
    if record is None and previous is not None and previous.get("reconciliation") and not replace:
        record = previous["reconciliation"]  # still a floor for the merged day
    date = f"{day:%Y-%m-%d}"
    try:
        write_block.block(es, index, run_id)
        with publish.scratch_dir(settings) as scratch_name:
            scratch = Path(scratch_name)
            with Quarantine(settings, "lake", run_id) as quarantine:
                scanned = scan_day(es_scan.raw_client(settings), index, quarantine, slices=slices,
                                   page_size=page_size, scratch=scratch, spill_rows=spill_rows)
                report.quarantined = quarantine.count
            merged = None
            if previous is not None and not replace:
                merged = merge_with_published(scanned, storage, partition, previous, scratch)
                scanned = ScanResult(merged.rows, merged.checksum, scanned.quarantined, spill_file=merged.spill_file)
                m = merged.record
                report.notes.append(f"merged with the lake copy of run {m['previous_run_id']}: "
                                    f"{m['index_rows']} points from the index ({m['replaced_rows']} of them replace "
                                    f"lake points, {m['changed_rows']} with a changed value), {m['kept_rows']} kept "
                                    f"from the lake")
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
                target = partition
                staging = layout.staging_path(run_id, target)
                meta = {"dataset": layout.POINTS, "partition": {"source": source, "date": date}, "run_id": run_id,
                        "schema_name": "point", "source_index": index, "checksum": scanned.checksum}
                extra = {}
                if merged is not None:
                    extra["merge"] = merged.record
                if record is not None:
                    extra["reconciliation"] = record
                if scanned.table is not None:
                    meta["per_item"] = manifest.rows_per_itemid(scanned.table)
                    built = publish.stage_partition(storage, staging, sort_points(scanned.table), meta, scratch,
                                                    manifest.POINT_CHECKSUM_COLUMNS, extra=extra)
                else:
                    built = publish.stage_written(
                        storage, staging, lambda path: write_sorted_from_spill(scanned.spill_file, path, scratch),
                        scanned.rows, meta, scratch, extra=extra)
                staged = []
                for resolution, future in rollups.items():
                    rollup_staging, rollup_target, report.rollup_rows[resolution] = future.result()
                    staged.append((rollup_staging, rollup_target))
            new_items = built.get("rows_per_itemid", {})
            if previous is not None:
                index_items = merged.index_items if merged is not None else new_items
                loss = fewer_points(previous.get("rows_per_itemid", {}), index_items, new_items)
                if loss and not replace:
                    raise WouldDropPointsError(f"{source} {day}: publishing would drop {describe_loss(loss)}; "
                                               f"nothing was published, the index was kept (rebuild from the index "
                                               f"alone with --replace)")
                if loss:
                    log.warning("--replace: %s %s loses %s that only the lake copy (run %s) held",
                                source, day, describe_loss(loss), previous["run_id"])
                    report.notes.append(f"replaced: {describe_loss(loss)} of the previous lake copy are gone")
            report.items = len(new_items)
            report.parquet_bytes = sum(f["bytes"] for f in built["files"])
            # Points last: a published points partition means its rollups are published too.
            staged.append((staging, target))
            for staging, target in staged:
                publish.publish(storage, staging, target, run_id)
        try:
            _verify(es, index, storage, source, day)
        except VerificationError as exc:
            log.error("verification of %s %s failed; index %s kept", source, day, index)
            if report.quarantined:
                raise VerificationError(f"{exc}; {report.quarantined} documents of the index were quarantined "
                                        f"as unusable (area lake, run {run_id})") from None
            raise
        report.verified = True
        if delete and dt.datetime.now(dt.timezone.utc) < _horizon_end(settings, day):
            report.notes.append(f"index {index} kept: {day} is within the late-value horizon "
                                f"({settings.late_horizon_hours} h after its end)")
        elif delete:
            es.indices.delete(index=index)
            report.deleted = True
            log.info("deleted index %s after verifying %d points of %d items (checksum %s) in %s",
                     index, report.rows, report.items, report.checksum, report.partition)
    finally:
        publish.discard(storage, run_id)
        if not report.deleted:
            try:
                write_block.lift(es, index)
            except Exception:  # never hide the original error; the next compaction lifts it
                log.warning("could not lift the write block on %s; the next compaction of the day will",
                            index, exc_info=True)
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
    now = dt.datetime.now(dt.timezone.utc)
    today = today or now.date()
    cutoff = today - dt.timedelta(days=settings.short_term_days)
    # Never before the late-value horizon has passed (matters when the retention is short).
    return [(s, d) for s, d in indexed_days(settings, es, source) if d < cutoff and _horizon_end(settings, d) <= now]


def compact_older_than_retention(settings: Settings, source: str = "*", *, storage: Storage | None = None,
                                 es=None, today: dt.date | None = None, on_report=None, reconcile: bool = False,
                                 mode: str | None = None, hosts: list[str] | None = None) -> list[Report]:
    """Compact (and, verified, delete) every due day. A day that fails does not stop the others;
    the failures are raised together at the end, their indices kept."""
    from etl.search.client import es_client

    es = es or es_client(settings)
    write_block.lift_stale(es, points_index_pattern(settings.es_index_prefix, source))
    reports, failures = [], []
    for s, d in days_due(settings, es, source, today):
        try:
            report = compact_day(settings, s, d, delete=True, storage=storage, es=es, reconcile=reconcile,
                                 mode=mode, hosts=hosts)
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
