"""gaps/backfill logic that needs no service: bucket arithmetic (quarantined is not missing),
point ids, the lake side of the store read by column and host, the union lookup, duplicate source
rows, and extract-stage quarantine records that name their source row."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from etl import ingest, store
from etl.lake import fixtures, layout
from etl.lake.publish import write_parquet_file
from etl.lake.storage import LocalStorage
from etl.schema import point_id
from etl.sources.base import ItemCatalog, ItemMeta, points_from_rows
from etl.window import Window

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 25, tzinfo=UTC)


def bucket(source, es, **kw):
    return ingest.Bucket(T0, T0 + dt.timedelta(hours=1), source, es, **kw)


def test_bucket_states():
    assert (bucket(10, 10).status, bucket(10, 10).missing) == ("ok", 0)
    assert (bucket(10, 0).status, bucket(10, 0).missing) == ("missing", 10)
    assert (bucket(10, 7).status, bucket(10, 7).missing) == ("short", 3)
    assert bucket(10, 12).status == "extra"
    quarantined = bucket(10, 8, quarantined=2, quarantine_reasons={"numeric value not finite": 2})
    assert (quarantined.status, quarantined.missing) == ("quarantined", 0)
    assert bucket(10, 7, quarantined=2).status == "short"
    # the store is the union when the lake holds points: a compacted hour is present
    compacted = bucket(10, 0, lake_count=10, store_count=10)
    assert (compacted.status, compacted.missing, compacted.stored) == ("ok", 0, 10)
    report = ingest.GapReport("zabbix", Window(T0, T0 + dt.timedelta(hours=1)), dt.timedelta(hours=1),
                              [quarantined, bucket(10, 7)])
    assert report.gaps == [report.buckets[1]] and report.quarantined == [quarantined]


def test_point_ids_parse_back():
    for args in [("zabbix", 10001, 1795564860, 123, "raw"), ("kcmm", 2**62, 1795564800, 0, "1h")]:
        assert store.parse_point_id(point_id(*args)) == args[1:]


def _lake(tmp_path, day):
    storage = LocalStorage(tmp_path / "lake")
    points = fixtures.synthetic_points("zabbix", day, hosts=["a", "b"], items_per_host=2, points_per_item=24,
                                       with_trends=False)
    rel = layout.join(layout.points_partition("zabbix", day), layout.PART.format(0))
    path = storage.local_path(rel)
    path.parent.mkdir(parents=True)
    write_parquet_file(points, path)
    return storage, points


def test_lake_ids_reads_the_window_and_hosts(tmp_path):
    day = T0.date()
    storage, points = _lake(tmp_path, day)
    whole = store.lake_ids(storage, "zabbix", Window(T0, T0 + dt.timedelta(days=1)))
    assert whole.num_rows == points.num_rows and whole.column_names == store.ID_COLUMNS
    morning = Window(T0, T0 + dt.timedelta(hours=6))
    only_a = store.lake_ids(storage, "zabbix", morning, hosts=["a"])
    expected = [r for r in points.to_pylist() if r["host"] == "a" and morning.contains_ns(r["clock"] * 10**9 + r["ns"])]
    assert sorted(zip(only_a["itemid"].to_pylist(), only_a["clock"].to_pylist(), only_a["ns"].to_pylist())) == \
        sorted((r["itemid"], r["clock"], r["ns"]) for r in expected)
    assert store.lake_ids(storage, "zabbix", Window(T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2))).num_rows == 0


def test_present_finds_quarantined_points_in_the_lake_without_asking_elasticsearch(tmp_path):
    storage, points = _lake(tmp_path, T0.date())
    first = points.to_pylist()[0]
    held = (first["itemid"], first["clock"], first["ns"], "raw")

    class NoElasticsearch:
        def search(self, **kw):
            raise AssertionError("asked Elasticsearch for a point the lake holds")

    assert store.present(None, "zabbix", [held], client=NoElasticsearch(), storage=storage) == {held}


def test_lake_counts_per_bucket_stream_the_clock_column(tmp_path):
    storage, points = _lake(tmp_path, T0.date())
    window = Window(T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5))
    got = store.lake_counts(storage, "zabbix", window, dt.timedelta(hours=1), hosts=["b"])
    expected: dict = {}
    for r in points.to_pylist():
        if r["host"] == "b" and window.contains_ns(r["clock"] * 10**9 + r["ns"]):
            start = dt.datetime.fromtimestamp(r["clock"] - r["clock"] % 3600, UTC)
            expected[start] = expected.get(start, 0) + 1
    assert got == expected and sum(got.values()) > 0


def test_distinct_counts_duplicate_rows_once():
    ids = pa.table({"itemid": [1, 1, 1, 2], "clock": [5, 5, 6, 5], "ns": [0, 0, 0, 0],
                    "resolution": ["raw"] * 4})
    assert store.distinct(ids).num_rows == 3


class _DuplicatingSource:
    """A source whose table has no primary key (an upgraded Zabbix): one row delivered twice."""
    name, mode = "zabbix", "db"

    def __init__(self):
        self.catalog = ItemCatalog("zabbix", [ItemMeta(1, "h", "k", 0)])

    def extract(self, window, run_id, quarantine):
        rows = [{"itemid": 1, "clock": window.start_s, "ns": 0, "value": 1.0},
                {"itemid": 1, "clock": window.start_s, "ns": 0, "value": 1.0},
                {"itemid": 1, "clock": window.start_s + 1, "ns": 0, "value": 2.0}]
        quarantine.add({"source": "zabbix", "itemid": 1, "clock": window.start_s + 2, "ns": 0, "value": "x"},
                       "not a number", stage="extract")
        yield points_from_rows(self.catalog, rows, run_id)


def test_source_ids_keep_duplicates_and_unconvertible_rows():
    ids = ingest._source_ids(_DuplicatingSource(), Window(T0, T0 + dt.timedelta(hours=1)))
    assert ids.num_rows == 4 and store.distinct(ids).num_rows == 3


def test_source_ids_never_read_a_csv_inbox():
    class Csv:
        name, mode = "kcmm", "csv"

        def extract(self, *a):
            raise AssertionError("reading the CSV inbox would mark files as consumed")

    assert ingest._source_ids(Csv(), Window(T0, T0 + dt.timedelta(hours=1))) is None


def test_backfill_result_still_unpacks_as_before():
    report = ingest.GapReport("zabbix", Window(T0, T0 + dt.timedelta(hours=1)), dt.timedelta(hours=1), [])
    result = ingest.BackfillResult(report, [], report, [(bucket(10, 7), "why")])
    first, summaries = result
    assert first is report and summaries == [] and not result.ok and result.still_short[0][1] == "why"


def test_extract_stage_records_name_source_host_and_key(monkeypatch):
    from etl.sources.zabbix_source import ZabbixSource

    class Catalogued(ZabbixSource):
        def _load_catalog(self):
            return ItemCatalog("zabbix", [ItemMeta(42, "web01", "vfs.fs.size[/]", 3)]), {}

    added = []

    class Sink:
        def add(self, record, reason, ref="", stage=""):
            added.append((record, reason, stage))

    source = Catalogued(None, None, None, 1000, "auto", None)
    source._on_bad(Sink())({"itemid": 42, "clock": 1795564860, "ns": 0, "value_type": 3, "value": "-1"},
                          "not an unsigned number")
    (record, reason, stage), = added
    assert stage == "extract" and record["source"] == "zabbix" and record["host"] == "web01"
    assert record["key"] == "vfs.fs.size[/]" and record["value"] == "-1" and record["resolution"] == "raw"


@pytest.mark.parametrize("text", ["password=abc", "token: abc", "passwd=abc&x=1"])
def test_redact_pairs(text):
    from etl.redact import redact

    assert "abc" not in redact(text) and "***" in redact(text)
