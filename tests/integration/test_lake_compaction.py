"""Compaction end to end on the real Elasticsearch and on both lake backends (local disk, the HDFS
minicluster through WebHDFS): exact round trip, atomic publish, verify-before-delete."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading

import duckdb
import pyarrow as pa
import pytest

from etl import quarantine
from etl.errors import StoreError, VerificationError
from etl.lake import compact, fixtures, layout, manifest, publish, reader
from etl.lake.findings import write_findings
from etl.schema import points_index
from etl.search.client import es_client
from etl.window import Window

from lake_support import NASTY_HOSTS, lake_settings, make_storage, same_points, seed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-lake"
SOURCE = "zabbix"


@pytest.fixture(scope="module")
def cfg(settings, elasticsearch_service):
    cfg = lake_settings(settings, PREFIX)
    es = es_client(cfg)
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    yield cfg
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


@pytest.fixture(scope="module")
def es(cfg):
    return es_client(cfg)


@pytest.fixture(params=["local", "hdfs"])
def lake(request, cfg, tmp_path):
    storage, url = make_storage(request.param, cfg, tmp_path, request)
    return storage, dataclasses.replace(cfg, lake_url=url)


def _read_day(cfg, storage, day, **kw):
    return reader.read_points(cfg, SOURCE, Window.day(day), storage=storage, **kw)


def test_exact_round_trip_then_index_deleted(lake, es):
    storage, cfg = lake
    day = dt.date(2026, 10, 1)
    points = seed(es, cfg, SOURCE, day)
    report = compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert report.verified and report.deleted
    assert report.rows == points.num_rows and report.items == 25
    assert not es.indices.exists(index=points_index(PREFIX, SOURCE, day))

    back = _read_day(cfg, storage, day)
    assert back.schema == points.schema
    assert same_points(back, points)  # every field, value, ns, Unicode text and tag
    assert back.column_names[:2] == ["source", "host"] and "@timestamp" not in back.column_names
    assert sorted(set(back["host"].to_pylist())) == sorted(NASTY_HOSTS)

    partition = layout.points_partition(SOURCE, day)
    assert storage.list(partition) == ["_manifest.json", "part-00000.parquet"]
    found = reader.read_manifest(storage, partition)
    assert found["rows"] == points.num_rows and found["source_index"] == report.index
    assert sum(found["rows_per_itemid"].values()) == points.num_rows
    assert found["checksum"] == manifest.as_hex(manifest.checksum_int(points, manifest.POINT_CHECKSUM_COLUMNS))
    assert storage.list(layout.STAGING) == [] and storage.list(layout.TRASH) == []

    # Pruning and filters: one hour, one odd host.
    hour = Window(dt.datetime(2026, 10, 1, 5, tzinfo=dt.timezone.utc), dt.datetime(2026, 10, 1, 6, tzinfo=dt.timezone.utc))
    some = reader.read_points(cfg, SOURCE, hour, hosts=["../x"], storage=storage)
    expected = points.filter(pa.compute.and_(pa.compute.equal(points["host"], "../x"), pa.compute.and_(
        pa.compute.greater_equal(points["clock"], hour.start_s), pa.compute.less(points["clock"], hour.end_s))))
    assert some.num_rows == expected.num_rows > 0 and same_points(some, expected)
    assert reader.read_points(cfg, SOURCE, Window.day(day + dt.timedelta(days=1)), storage=storage).num_rows == 0


def test_rerun_replaces_the_day_exactly(lake, es):
    storage, cfg = lake
    day = dt.date(2026, 10, 2)
    points = seed(es, cfg, SOURCE, day)
    first = compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es)
    second = compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es)
    assert first.run_id != second.run_id and first.checksum == second.checksum
    assert not second.deleted and es.indices.exists(index=second.index)
    assert reader.read_manifest(storage, layout.points_partition(SOURCE, day))["run_id"] == second.run_id
    assert same_points(_read_day(cfg, storage, day), points)  # no duplicates
    assert storage.list(layout.TRASH) == [] and storage.list(layout.STAGING) == []


def test_failure_inside_the_writer_publishes_nothing(lake, es, monkeypatch):
    storage, cfg = lake
    day = dt.date(2026, 10, 3)
    old_points = seed(es, cfg, SOURCE, day)
    compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es)
    more = fixtures.synthetic_points(SOURCE, day, hosts=["late-host"], items_per_host=2, points_per_item=10,
                                     first_itemid=90_001)
    fixtures.index_points(es, more, PREFIX)

    calls = []
    real_writer = publish.write_parquet_file

    def failing_writer(table, path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError("disk full (injected after the first file)")
        real_writer(table, path)

    monkeypatch.setattr(publish, "write_parquet_file", failing_writer)
    with pytest.raises(OSError, match="injected"):
        compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert same_points(_read_day(cfg, storage, day), old_points)  # the old partition, untouched
    assert storage.list(layout.STAGING) == []
    assert es.count(index=points_index(PREFIX, SOURCE, day))["count"] == old_points.num_rows + more.num_rows

    monkeypatch.setattr(publish, "write_parquet_file", real_writer)
    report = compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert report.deleted
    assert same_points(_read_day(cfg, storage, day), pa.concat_tables([old_points, more]))


def test_sigkill_mid_write_leaves_no_partition_then_rerun_is_exact(lake, es):
    storage, cfg = lake
    day = dt.date(2026, 10, 4)
    points = seed(es, cfg, SOURCE, day)
    script = textwrap.dedent(f"""
        import time
        from etl.config import load
        from etl.lake import compact, publish
        real = publish.write_parquet_file
        def slow(table, path):
            real(table, path)
            print("STAGED", flush=True)
            time.sleep(600)
        publish.write_parquet_file = slow
        compact.compact_day(load(), {SOURCE!r}, "{day}")
    """)
    env = {**os.environ, "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_LAKE_URL": cfg.lake_url}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "STAGED"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert storage.list(layout.STAGING) != []  # the killed run's leftovers ...
    assert reader.published_days(storage, SOURCE) == set()  # ... are invisible
    assert _read_day(cfg, storage, day).num_rows == 0
    assert reader.read_points(cfg, SOURCE, Window.day(day), "5m", storage=storage).num_rows == 0
    assert es.count(index=points_index(PREFIX, SOURCE, day))["count"] == points.num_rows

    report = compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert report.deleted and same_points(_read_day(cfg, storage, day), points)
    assert publish.sweep_stale(storage, older_than=dt.timedelta(0))
    assert storage.list(layout.STAGING) == []


def test_write_after_the_scan_meets_the_write_block_and_is_merged_later(lake, es, monkeypatch):
    storage, cfg = lake
    day = dt.date(2026, 10, 5)
    points = seed(es, cfg, SOURCE, day)
    late = fixtures.synthetic_points(SOURCE, day, hosts=["late"], items_per_host=1, points_per_item=1,
                                     with_trends=False, first_itemid=91_001)
    real_scan = compact.scan_day
    outcome, writers = [], []

    def scan_then_late_write(*args, **kwargs):
        result = real_scan(*args, **kwargs)

        def write():
            try:
                fixtures.index_points(es, late, PREFIX)
                outcome.append("loaded")
            except StoreError as exc:
                outcome.append(str(exc))

        writers.append(threading.Thread(target=write))
        writers[-1].start()
        writers[-1].join(timeout=5)  # a writer that waits for the block to lift is still waiting here
        return result

    monkeypatch.setattr(compact, "scan_day", scan_then_late_write)
    index = points_index(PREFIX, SOURCE, day)
    report = compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert report.verified and report.deleted and report.rows == points.num_rows  # the block held the index still
    writers[0].join(timeout=300)
    assert outcome, "the racing writer never finished"
    if outcome[0] != "loaded":  # refused by the block: the writer knows, nothing vanished silently
        assert "cluster_block_exception" in outcome[0]
        fixtures.index_points(es, late, PREFIX)
    assert es.count(index=index)["count"] == 1  # the late point, in a new index of the day

    monkeypatch.setattr(compact, "scan_day", real_scan)
    again = compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert again.deleted and again.rows == points.num_rows + 1
    assert same_points(_read_day(cfg, storage, day), pa.concat_tables([points, late]))


@pytest.mark.parametrize("tamper", ["rows_per_itemid", "checksum", "parquet"])
def test_tampered_lake_copy_fails_verification_and_keeps_the_index(lake, es, tamper):
    storage, cfg = lake
    day = dt.date(2026, 10, 6)
    points = seed(es, cfg, SOURCE, day)
    compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es)
    partition = layout.points_partition(SOURCE, day)
    found = reader.read_manifest(storage, partition)
    if tamper == "rows_per_itemid":
        first = sorted(found["rows_per_itemid"])[0]
        found["rows_per_itemid"][first] += 1
        storage.write_bytes(layout.join(partition, layout.MANIFEST), manifest.dumps(found))
    elif tamper == "checksum":
        found["checksum"] = f"{(int(found['checksum'], 16) + 1) % 2**64:016x}"
        storage.write_bytes(layout.join(partition, layout.MANIFEST), manifest.dumps(found))
    else:  # one value changed in the data file, manifest left as it was
        import io

        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(storage.read_bytes(layout.join(partition, "part-00000.parquet"))))
        values = table["value"].to_pylist()
        position = next(i for i, v in enumerate(values) if v is not None)
        values[position] += 1.0
        table = table.set_column(table.schema.get_field_index("value"), "value", pa.array(values, pa.float64()))
        sink = io.BytesIO()
        pq.write_table(table, sink)
        storage.write_bytes(layout.join(partition, "part-00000.parquet"), sink.getvalue())
    with pytest.raises(VerificationError):
        compact.verify_day(cfg, SOURCE, day, storage=storage, es=es)
    assert es.count(index=points_index(PREFIX, SOURCE, day))["count"] == points.num_rows
    es.indices.delete(index=points_index(PREFIX, SOURCE, day))


ROLLUP_SQL = """
WITH ranked AS (
    SELECT *, row_number() OVER (PARTITION BY itemid, clock // {b} ORDER BY clock DESC, ns DESC) AS newest
    FROM raw WHERE resolution = 'raw' AND value_type IN (0, 3)
)
SELECT itemid, clock // {b} * {b} AS bucket, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, max(CASE WHEN newest = 1 THEN value END) AS last
FROM ranked GROUP BY itemid, bucket
{trends}
ORDER BY itemid, bucket
"""
TRENDS_SQL = """
UNION ALL
SELECT itemid, clock // 3600 * 3600, value_min, value_max, value * value_count, value_count, value
FROM raw t WHERE resolution = '1h' AND value_type IN (0, 3)
  AND NOT EXISTS (SELECT 1 FROM raw r WHERE r.resolution = 'raw' AND r.itemid = t.itemid
                  AND r.clock // 3600 = t.clock // 3600)
"""


@pytest.mark.parametrize("resolution", ["5m", "1h"])
def test_rollups_equal_a_duckdb_aggregation_of_the_raw_partition(lake, es, resolution):
    storage, cfg = lake
    day = dt.date(2026, 10, 7)
    seed(es, cfg, SOURCE, day)
    compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es)
    raw = _read_day(cfg, storage, day)
    bucket = {"5m": 300, "1h": 3600}[resolution]
    sql = ROLLUP_SQL.format(b=bucket, trends=TRENDS_SQL if resolution == "1h" else "")
    con = duckdb.connect()
    con.register("raw", raw)
    expected = con.sql(sql).fetchall()
    got = reader.read_points(cfg, SOURCE, Window.day(day), resolution, storage=storage)
    got_rows = sorted(zip(*(got[c].to_pylist() for c in ["itemid", "bucket", "min", "max", "sum", "count", "last"])))
    assert len(got_rows) == len(expected) > 0
    for mine, theirs in zip(got_rows, sorted(expected)):
        assert mine[:2] == theirs[:2] and mine[2:4] == theirs[2:4] and mine[5:] == theirs[5:]
        assert mine[4] == pytest.approx(theirs[4], rel=1e-12)
    es.indices.delete(index=points_index(PREFIX, SOURCE, day))


def test_older_than_retention_compacts_and_deletes_only_old_days(lake, es):
    storage, cfg = lake
    source = "retention"
    today = dt.date(2026, 10, 20)
    days = [today - dt.timedelta(days=n) for n in (10, 8, 2)]
    for day in days:
        seed(es, cfg, source, day, hosts=["h"], items_per_host=2, points_per_item=5)
    reports = compact.compact_older_than_retention(cfg, source, storage=storage, es=es, today=today)
    assert [(r.day, r.deleted) for r in reports] == [(days[0], True), (days[1], True)]
    assert reader.published_days(storage, source) == {days[0], days[1]}
    assert es.indices.exists(index=points_index(PREFIX, source, days[2]))
    assert compact.compact_older_than_retention(cfg, source, storage=storage, es=es, today=today) == []
    es.indices.delete(index=points_index(PREFIX, source, days[2]))


def test_odd_partition_values_neither_escape_nor_collide(lake):
    storage, cfg = lake
    day = dt.date(2026, 10, 8)
    jobs = ["../x", "a/b", "with space", "交易 分析", "..", "50%"]
    for n, job in enumerate(jobs):
        write_findings(cfg, job, day, pa.table({"job": [job], "rule": ["r"], "count": [n]}), storage=storage)
    assert storage.list("") == [layout.FINDINGS] or set(storage.list("")) <= {layout.FINDINGS, layout.STAGING, layout.TRASH}
    assert len(storage.list(layout.FINDINGS)) == len(jobs)
    for n, job in enumerate(jobs):
        found = reader.read_findings(cfg, job, Window.day(day), storage=storage)
        assert found.to_pylist() == [{"job": job, "rule": "r", "count": n}]
        got = reader.read_manifest(storage, layout.findings_partition(job, day))
        assert got["partition"] == {"job": job, "date": "2026-10-08"}

    # A points partition of an odd source name, through the same staging/publish path.
    points = fixtures.synthetic_points("../源 a/b", day, hosts=NASTY_HOSTS[:2], items_per_host=2, points_per_item=3)
    target = layout.points_partition("../源 a/b", day)
    run_id = publish.new_run_id("test")
    with publish.scratch_dir(cfg) as scratch:
        import pathlib

        publish.stage_partition(storage, layout.staging_path(run_id, target), points, {
            "dataset": "points", "partition": {"source": "../源 a/b", "date": "2026-10-08"}, "run_id": run_id,
            "schema_name": "point", "per_item": manifest.rows_per_itemid(points)}, pathlib.Path(scratch),
            manifest.POINT_CHECKSUM_COLUMNS)
    publish.publish(storage, layout.staging_path(run_id, target), target, run_id)
    back = reader.read_points(cfg, "../源 a/b", Window.day(day), storage=storage)
    assert same_points(back, points)
    assert reader.read_points(cfg, "..", Window.day(day), storage=storage).num_rows == 0


def test_day_bigger_than_the_memory_threshold_spills_and_round_trips_exactly(lake, es, tmp_path):
    storage, cfg = lake
    day = dt.date(2026, 10, 9)
    points = seed(es, cfg, SOURCE, day)
    report = compact.compact_day(cfg, SOURCE, day, delete=False, storage=storage, es=es, spill_rows=100)
    assert report.verified and report.rows == points.num_rows and report.items == 25
    back = _read_day(cfg, storage, day)
    assert back.schema == points.schema and same_points(back, points)
    import io

    import pyarrow.parquet as pq

    part = pq.read_table(io.BytesIO(storage.read_bytes(layout.join(layout.points_partition(SOURCE, day),
                                                                   "part-00000.parquet"))))
    keys = list(zip(*(part[c].to_pylist() for c in ("host", "itemid", "clock", "ns"))))
    assert keys == sorted(keys)  # the out-of-core sort wrote the file in lake order
    spilled = {res: reader.read_points(cfg, SOURCE, Window.day(day), res, storage=storage) for res in ("5m", "1h")}

    compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)  # in memory this time, then delete
    for resolution, table in spilled.items():
        in_memory = reader.read_points(cfg, SOURCE, Window.day(day), resolution, storage=storage)
        assert table.drop_columns(["sum"]).equals(in_memory.drop_columns(["sum"]))
        assert table["sum"].to_pylist() == pytest.approx(in_memory["sum"].to_pylist(), rel=1e-12)


def test_one_failing_day_does_not_stop_the_others(lake, es, monkeypatch):
    storage, cfg = lake
    source = "retfail"
    today = dt.date(2026, 10, 20)
    bad_day, good_day = today - dt.timedelta(days=12), today - dt.timedelta(days=11)
    for day in (bad_day, good_day):
        seed(es, cfg, source, day, hosts=["h"], items_per_host=2, points_per_item=5)
    real_verify = compact._verify

    def verify_failing_on_bad_day(es_, index, storage_, source_, day):
        if day == bad_day:
            raise VerificationError(f"injected mismatch for {day}")
        return real_verify(es_, index, storage_, source_, day)

    monkeypatch.setattr(compact, "_verify", verify_failing_on_bad_day)
    with pytest.raises(VerificationError, match="1 of 2 due days failed"):
        compact.compact_older_than_retention(cfg, source, storage=storage, es=es, today=today)
    assert es.indices.exists(index=points_index(PREFIX, source, bad_day))
    assert not es.indices.exists(index=points_index(PREFIX, source, good_day))
    es.indices.delete(index=points_index(PREFIX, source, bad_day))


def test_unusable_document_is_quarantined_and_the_index_kept(lake, es, tmp_path):
    storage, cfg = lake
    cfg = dataclasses.replace(cfg, quarantine_dir=str(tmp_path / "quarantine"))
    day = dt.date(2026, 10, 10)
    points = seed(es, cfg, SOURCE, day, hosts=["h"], items_per_host=2, points_per_item=5)
    index = points_index(PREFIX, SOURCE, day)
    clock = int(dt.datetime(2026, 10, 10, 12, tzinfo=dt.timezone.utc).timestamp())
    es.index(index=index, id="broken-1", refresh=True, document={  # no host, no itemid
        "@timestamp": fixtures_timestamp(clock), "source": SOURCE, "key": "k", "value_type": 0, "value": 1.0,
        "clock": clock, "ns": 0, "resolution": "raw", "run_id": "manual"})
    with pytest.raises(VerificationError, match="1 documents of the index were quarantined"):
        compact.compact_day(cfg, SOURCE, day, storage=storage, es=es)
    assert es.count(index=index)["count"] == points.num_rows + 1
    entries = list(quarantine.read(tmp_path / "quarantine"))
    assert [(e["area"], e["ref"], e["stage"]) for e in entries] == [("lake", f"{index}/broken-1", "compact")]
    assert "missing required field" in entries[0]["reason"]
    assert same_points(_read_day(cfg, storage, day), points)  # the good points are in the lake
    es.indices.delete(index=index)


def fixtures_timestamp(clock: int) -> str:
    return dt.datetime.fromtimestamp(clock, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
