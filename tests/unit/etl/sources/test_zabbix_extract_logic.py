"""Pure Zabbix extraction logic: retention, span planning, budget splitting, row conversion, and the
API source against an in-memory fake of the JSON-RPC boundary (the real server is in
tests/integration/test_zabbix_extract.py)."""

import datetime as dt
from urllib.error import HTTPError

import pytest
from zabbix_utils.exceptions import ProcessingError

from etl.config import Settings
from etl.errors import SourceError
from etl.sources.base import ItemCatalog, ItemMeta
from etl.sources.zabbix_api import ZabbixApiSource
from etl.sources.zabbix_common import (Span, TooBig, fetch_under_budget, history_batch, history_columns,
                                       history_cutoff, parse_period, plan_spans)
from etl.sources.zabbix_meta import catalog_from_api, catalog_from_db, host_groups_selector
from etl.window import Window


def test_parse_period_units_and_macros():
    assert parse_period("90d") == 90 * 86400
    assert parse_period("1w") == 604800
    assert parse_period("3600") == 3600
    assert parse_period("0") == 0
    assert parse_period("{$HISTORY}") is None


def test_cutoff_rounds_up_to_the_hour_so_hours_are_never_mixed():
    assert history_cutoff(3600, 10_000) == 7200  # 6400 rounded up
    assert history_cutoff(None, 10_000) is None


def test_plan_spans_by_retention():
    # cutoff in the middle: trends before it, history after, disjoint inclusive ranges
    assert plan_spans(0, 7200, 3600, numeric=True) == [("1h", Span(0, 3599)), ("raw", Span(3600, 7199))]
    # text item: the expired part has nothing
    assert plan_spans(0, 7200, 3600, numeric=False) == [("raw", Span(3600, 7199))]
    # history kept / window entirely recent
    assert plan_spans(0, 7200, None, numeric=True) == [("raw", Span(0, 7199))]
    assert plan_spans(3600, 7200, 0, numeric=True) == [("raw", Span(3600, 7199))]
    # window entirely older than retention
    assert plan_spans(0, 3600, 7200, numeric=True) == [("1h", Span(0, 3599))]
    assert plan_spans(0, 3600, 7200, numeric=True, use_trends="never") == [("raw", Span(0, 3599))]


def _fake_store(rows_per_second: dict[int, int], wall: int):
    """count/fetch over a fake store: rows_per_second[second] rows for each item; fetch fails like
    PHP at `wall` rows."""
    calls = []

    def rows(span, ids):
        return [(i, s, k) for s in range(span.lo, span.hi + 1) for i in ids for k in range(rows_per_second.get(s, 0))]

    def count(span, ids):
        calls.append(("count", span, tuple(ids)))
        return len(rows(span, ids))

    def fetch(span, ids, limit):
        calls.append(("fetch", span, tuple(ids)))
        found = rows(span, ids)
        if len(found) >= wall:
            raise TooBig("HTTP 500")
        return found[:limit] if limit else found

    return count, fetch, calls


def test_budget_split_returns_every_row_exactly_once_in_order():
    per_second = {s: 3 for s in range(100)}
    per_second[50] = 40  # a burst
    count, fetch, calls = _fake_store(per_second, wall=10**9)
    stats = {}
    got = [r for rows in fetch_under_budget(Span(0, 99), [1, 2], 25, count, fetch, stats) for r in rows]
    expected = [(i, s, k) for s in range(100) for i in (1, 2) for k in range(per_second[s])]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    assert [r[1] for r in got] == sorted(r[1] for r in got)  # chronological pieces
    assert all(len(c[2]) <= 2 for c in calls) and stats["over_budget"] >= 1
    # the 1-second burst (80 rows for 2 items) is split by items
    assert any(c[0] == "fetch" and c[1] == Span(50, 50) and len(c[2]) == 1 for c in calls)


def test_too_big_halves_even_when_count_said_it_fits():
    count, fetch, calls = _fake_store({s: 1 for s in range(64)}, wall=20)
    stats = {}
    got = [r for rows in fetch_under_budget(Span(0, 63), [7], 1000, count, fetch, stats) for r in rows]
    assert len(got) == 64 and stats["too_big"] >= 2


def test_unsplittable_too_big_is_a_source_error_naming_item_and_second():
    count, fetch, _ = _fake_store({5: 10}, wall=5)
    with pytest.raises(SourceError, match="item 9 second 5"):
        list(fetch_under_budget(Span(5, 5), [9], 1000, count, fetch))


def _catalog():
    return ItemCatalog("zabbix", [ItemMeta(1, "h", "k.float", 0), ItemMeta(2, "h", "k.text", 4),
                                  ItemMeta(3, "h", "k.log", 2), ItemMeta(4, "h", "k.uint", 3)])


def test_history_columns_quarantine_bad_values_and_keep_the_rest():
    bad = []
    batch = history_batch(_catalog(), "r", 0, ["1", "1", "1"], ["10", "11", "12"], ["0", "5", "7"],
                          ["1.5", "abc", "-2e3"], (0, 10**20), lambda rec, why: bad.append((rec, why)))
    assert batch.column("value").to_pylist() == [1.5, -2000.0]
    assert batch.column("ns").to_pylist() == [0, 7]
    assert len(bad) == 1 and bad[0][1].startswith("not a number") and bad[0][0]["clock"] == 11


def test_text_with_lone_surrogate_is_quarantined_long_text_passes():
    bad = []
    long_text = "长" * 100_000
    batch = history_batch(_catalog(), "r", 4, [2, 2], [1, 2], [0, 0], ["ok \ud800", long_text], (0, 10**20),
                          lambda rec, why: bad.append(why))
    assert batch.column("value_text").to_pylist() == [long_text]
    assert bad == ["value is not valid UTF-8 (lone surrogate)"]


def test_history_window_edges_are_exact_to_the_nanosecond():
    w = Window(dt.datetime.fromtimestamp(100, dt.timezone.utc), dt.datetime.fromtimestamp(102, dt.timezone.utc))
    batch = history_batch(_catalog(), "r", 3, [4] * 4, [99, 100, 101, 102], [999_999_999, 0, 999_999_999, 0],
                          ["1", "2", "3", "4"], (w.start_ns, w.end_ns), lambda *a: None)
    assert batch.column("value").to_pylist() == [2.0, 3.0]


def test_ns_out_of_range_is_quarantined():
    cols, bad = history_columns([1], [5], [1_000_000_000], ["1"], 0)
    assert bad and "ns out of range" in bad[0][1]


def test_catalog_from_api_6_and_7_group_selectors_and_tag_order():
    assert host_groups_selector(6.0) == ("selectGroups", "groups")
    assert host_groups_selector(7.0) == ("selectHostGroups", "hostgroups")
    hosts = [{"hostid": "10", "host": "fe01", "name": "前置机", "hostgroups": [{"name": "b"}, {"name": "a"}],
              "tags": [{"tag": "env", "value": "prod"}]}]
    items = [{"itemid": "5", "hostid": "10", "key_": "k", "name": "n", "units": "ms", "value_type": "0",
              "history": "7d", "trends": "365d", "tags": [{"tag": "z", "value": "1"}, {"tag": "a", "value": "2"}]},
             {"itemid": "6", "hostid": "10", "key_": "bin", "name": "b", "units": "", "value_type": "5",
              "history": "7d", "trends": "0", "tags": []}]
    catalog, retention = catalog_from_api(hosts, items, "hostgroups", global_history="1d")
    meta = catalog[5]
    assert meta.host_groups == ("a", "b") and meta.host_name == "前置机" and meta.units == "ms"
    assert meta.tags == (("a", "2"), ("z", "1"), ("env", "prod"))
    assert 6 not in catalog  # binary items have no point representation
    assert retention[5].history_s == 86400 and retention[5].trends_s == 365 * 86400


def test_catalog_from_db_equals_catalog_from_api():
    api_cat, _ = catalog_from_api(
        [{"hostid": "10", "host": "h", "name": "H", "groups": [{"name": "g"}], "tags": [{"tag": "t", "value": "v"}]}],
        [{"itemid": "5", "hostid": "10", "key_": "k", "name": "n", "units": "", "value_type": "3",
          "history": "1d", "trends": "1d", "tags": []}], "groups")
    db_cat, _ = catalog_from_db(
        [{"itemid": 5, "hostid": 10, "host": "h", "host_name": "H", "key_": "k", "name": "n", "units": "",
          "value_type": 3, "history": "1d", "trends": "1d"}],
        [{"hostid": 10, "name": "g"}], [], [{"hostid": 10, "tag": "t", "value": "v"}])
    assert api_cat.table.equals(db_cat.table)


class FakeApi:
    """The JSON-RPC boundary with Zabbix's observed behaviour: wrong value type -> empty list,
    inclusive time_from/time_till, HTTP 500 (as zabbix_utils raises it) above `wall` rows."""

    def __init__(self, history, wall=10**9, version=6.0):
        self.history = history  # list of dicts itemid, clock, ns, value, vt
        self.wall = wall
        self.version = type("V", (), {"major": version})()
        self.calls = []

    def send_api_request(self, method, params):
        self.calls.append((method, params))
        if method == "host.get":
            # 6.2+ answers selectHostGroups with "hostgroups"; 7.0 refuses selectGroups.
            if self.version.major >= 6.2:
                assert "selectGroups" not in params
                groups_key = "hostgroups" if "selectHostGroups" in params else None
            else:
                groups_key = "groups" if "selectGroups" in params else None
            host = {"hostid": "1", "host": "h", "name": "h", "tags": []}
            if groups_key:
                host[groups_key] = [{"name": "g"}]
            return {"result": [host]}
        if method == "item.get":
            if params.get("countOutput"):
                return {"result": "2"}
            return {"result": [{"itemid": "1", "hostid": "1", "key_": "f", "name": "f", "units": "", "value_type": "0",
                                "history": "90d", "trends": "365d", "tags": []},
                               {"itemid": "2", "hostid": "1", "key_": "t", "name": "t", "units": "", "value_type": "4",
                                "history": "90d", "trends": "0", "tags": []}]}
        if method == "settings.get":
            return {"result": {"hk_history_global": "0", "hk_trends_global": "0"}}
        if method == "history.get":
            rows = [r for r in self.history if r["vt"] == params["history"] and int(r["itemid"]) in params["itemids"]
                    and params["time_from"] <= r["clock"] <= params["time_till"]]
            if params.get("countOutput"):
                return {"result": str(len(rows))}
            if len(rows) >= self.wall:
                try:
                    raise HTTPError("http://x", 500, "Internal Server Error", {}, None)
                except HTTPError:
                    raise ProcessingError("Unable to connect to http://x:", "HTTP Error 500") from None
            rows = rows[:params["limit"]] if params.get("limit") else rows
            return {"result": [{"itemid": str(r["itemid"]), "clock": str(r["clock"]), "ns": str(r["ns"]),
                                "value": str(r["value"])} for r in rows]}
        raise AssertionError(method)


def test_api_source_splits_at_the_wall_and_returns_every_row(tmp_path):
    start = 1_790_000_000
    history = [{"itemid": 1, "vt": 0, "clock": start + s, "ns": k, "value": s + k / 10} for s in range(300) for k in (0, 1)]
    history += [{"itemid": 2, "vt": 4, "clock": start + 5, "ns": 0, "value": "text 文本"}]
    api = FakeApi(history, wall=100)
    src = ZabbixApiSource(Settings(quarantine_dir=str(tmp_path)), api=api, row_budget=1000,
                          now=dt.datetime.fromtimestamp(start + 400, dt.timezone.utc), max_batch_rows=128)
    window = Window(dt.datetime.fromtimestamp(start, dt.timezone.utc),
                    dt.datetime.fromtimestamp(start + 300, dt.timezone.utc))
    batches = list(src.extract(window, "run1", quarantine=None))
    assert all(b.num_rows <= 128 for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    floats = sorted((r["clock"], r["ns"], r["value"]) for r in rows if r["itemid"] == 1)
    assert floats == sorted((h["clock"], h["ns"], h["value"]) for h in history if h["itemid"] == 1)
    assert [r["value_text"] for r in rows if r["itemid"] == 2] == ["text 文本"]
    assert src.stats["too_big"] >= 1
    # history.get was always asked for the item's own value type
    for method, params in api.calls:
        if method == "history.get":
            assert {1: 0, 2: 4}[params["itemids"][0]] == params["history"]


def test_api_source_count_per_bucket():
    start = 1_790_000_000 - 1_790_000_000 % 3600
    history = [{"itemid": 1, "vt": 0, "clock": start + s * 60, "ns": 0, "value": 1.0} for s in range(120)]
    src = ZabbixApiSource(Settings(), api=FakeApi(history),
                          now=dt.datetime.fromtimestamp(start + 7200, dt.timezone.utc))
    window = Window(dt.datetime.fromtimestamp(start, dt.timezone.utc),
                    dt.datetime.fromtimestamp(start + 3 * 3600, dt.timezone.utc))
    counts = src.count(window, dt.timedelta(hours=1))
    assert list(counts.values()) == [60, 60, 0]


@pytest.mark.parametrize("version", [6.0, 7.0, 7.2])
def test_host_groups_come_through_on_every_api_version(version):
    src = ZabbixApiSource(Settings(), api=FakeApi([], version=version))
    catalog, _ = src.catalog()
    assert catalog[1].host_groups == ("g",)
