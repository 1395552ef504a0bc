"""Pure Zabbix extraction logic: retention, span planning, budget splitting, row conversion, and the
API source against an in-memory fake of the JSON-RPC boundary (the real server is in
tests/integration/test_zabbix_extract.py)."""

import datetime as dt
from urllib.error import HTTPError

import numpy as np
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


def test_catalog_from_api_columns_equal_the_item_objects_path():
    # The column-built catalog holds exactly what one built from ItemMeta objects holds, and an
    # item answered twice keeps its first position with its last answer (as a dict would).
    hosts = [{"hostid": str(h), "host": f"h{h}", "name": f"主机{h}" if h % 2 else "",
              "groups": [{"name": "z"}, {"name": f"g{h % 3}"}], "tags": [{"tag": "site", "value": f"s{h}"}] if h % 4 else []}
             for h in range(1, 9)]
    items = [{"itemid": str(100 + i), "hostid": str(1 + i % 8), "key_": f"k{i}", "name": f"n{i}" if i % 5 else "",
              "units": "%" if i % 2 else "", "value_type": str(i % 5), "history": "7d", "trends": "365d",
              "tags": [{"tag": "b", "value": str(i)}, {"tag": "a", "value": ""}] if i % 3 else []}
             for i in range(40)]
    items.append({**items[7], "key_": "renamed"})
    items.append({**items[3], "hostid": "999"})  # host out of scope: dropped
    catalog, retention = catalog_from_api(hosts, items, "groups")
    objects = ItemCatalog("zabbix", [catalog[int(i)] for i in catalog.itemids])
    assert objects.table.equals(catalog.table)
    assert catalog.itemids.tolist() == list(range(100, 140)) and catalog[107].key == "renamed"
    assert catalog[101].tags == (("a", ""), ("b", "1"), ("site", "s2"))
    assert catalog.value_types_of(np.array([104, 5, 101])).tolist() == [4, -1, 1]
    assert 5 not in catalog and catalog.items.get(5) is None and len(catalog.items) == 40
    assert retention[139].history_s == 7 * 86400


class FakeApi:
    """The JSON-RPC boundary with Zabbix's observed behaviour (6.0, checked against the real
    server): history.get reads the table of `history` whatever the item's current type is,
    inclusive time_from/time_till, HTTP 500 (as zabbix_utils raises it) above `wall` rows;
    hk_* settings from housekeeping.get."""

    def __init__(self, history, wall=10**9, version=6.0, housekeeping=None):
        self.history = history  # list of dicts itemid, clock, ns, value, vt (the table's type)
        self.wall = wall
        self.housekeeping = housekeeping or {"hk_history_global": "0", "hk_history": "90d",
                                             "hk_trends_global": "0", "hk_trends": "365d"}
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
        if method == "housekeeping.get":
            return {"result": {k: self.housekeeping[k] for k in params["output"]}}
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
                                "value": str(r["value"]), **{k: str(r[k]) for k in r if k in params["output"]
                                                             and k not in ("itemid", "clock", "ns", "value")}}
                               for r in rows]}
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
    assert {r["value_type"] for r in rows if r["itemid"] == 1} == {0}


def test_api_source_reads_history_of_an_earlier_value_type_with_its_own_type(tmp_path):
    start = 1_790_000_000
    # item 1 is float now; before an item.update it was unsigned (history_uint) and log (history_log)
    history = [{"itemid": 1, "vt": 3, "clock": start + 1, "ns": 0, "value": 2**64 - 2},
               {"itemid": 1, "vt": 2, "clock": start + 2, "ns": 5, "value": "old line", "timestamp": start - 9,
                "source": "Security", "severity": 4, "logeventid": 4625},
               {"itemid": 1, "vt": 0, "clock": start + 3, "ns": 0, "value": 0.5}]
    api = FakeApi(history)
    src = ZabbixApiSource(Settings(quarantine_dir=str(tmp_path)), api=api,
                          now=dt.datetime.fromtimestamp(start + 400, dt.timezone.utc))
    window = Window(dt.datetime.fromtimestamp(start, dt.timezone.utc),
                    dt.datetime.fromtimestamp(start + 300, dt.timezone.utc))
    rows = {r["clock"] - start: r for b in src.extract(window, "run1", quarantine=None) for r in b.to_pylist()}
    assert sorted(rows) == [1, 2, 3]
    assert (rows[1]["value_type"], rows[1]["value_uint"], rows[1]["value_text"]) == (3, 2**64 - 2, None)
    assert (rows[2]["value_type"], rows[2]["value_text"], rows[2]["value"]) == (2, "old line", None)
    assert (rows[2]["log_timestamp"], rows[2]["log_source"], rows[2]["log_severity"], rows[2]["log_eventid"]) == \
        (start - 9, "Security", 4, 4625)
    assert (rows[3]["value_type"], rows[3]["value"], rows[3]["value_uint"], rows[3]["log_source"]) == (0, 0.5, None, None)
    # one request per table holding everything of the other types (the float and the text item
    # share them); a window this short fits the row budget, so each is the fetch itself (a count
    # comes first only where the expected rows would not fit: tests/.._a_request_expected_to_fit..)
    requests = sorted((p["history"], p["itemids"]) for m, p in api.calls if m == "history.get")
    assert requests == [(0, [1]), (0, [2]), (1, [1, 2]), (2, [1, 2]), (3, [1, 2]), (4, [1]), (4, [2])]
    assert not any(p.get("countOutput") for m, p in api.calls if m == "history.get")
    assert sum(src.count(window, dt.timedelta(minutes=5)).values()) == 3


def test_api_housekeeping_override_comes_from_housekeeping_get():
    api = FakeApi([], housekeeping={"hk_history_global": "1", "hk_history": "1d",
                                    "hk_trends_global": "1", "hk_trends": "2w"})
    _, retention = ZabbixApiSource(Settings(), api=api).catalog()
    assert (retention[1].history_s, retention[1].trends_s) == (86400, 14 * 86400)
    assert not any(m == "settings.get" for m, _ in api.calls)


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


class ScriptedApi:
    """send_api_request answers from a script: an exception factory or a result."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def send_api_request(self, method, params):
        self.calls += 1
        step = self.script.pop(0)
        if callable(step):
            step()
        return {"result": step}


def _http(code, body=b""):
    import io

    def fail():
        try:
            raise HTTPError("http://x", code, "Server Error", {}, io.BytesIO(body))
        except HTTPError as err:
            raise ProcessingError("Unable to connect to http://x:", err) from None
    return fail


def _timeout():
    from urllib.error import URLError

    def fail():
        try:
            raise URLError(TimeoutError("timed out"))
        except URLError as err:
            raise ProcessingError("Unable to connect to http://x:", err) from None
    return fail


@pytest.fixture
def no_sleep(monkeypatch):
    from etl.sources import zabbix_api

    pauses = []
    monkeypatch.setattr(zabbix_api, "_sleep", pauses.append)
    return pauses


def test_only_an_empty_http_500_is_the_memory_wall(no_sleep):
    src = ZabbixApiSource(Settings(), api=ScriptedApi([_http(500)]))
    with pytest.raises(TooBig):
        src.call("history.get", {})
    assert no_sleep == []


@pytest.mark.parametrize("failure", [_http(500, b"<html>Internal error</html>"), _http(502), _http(503), _timeout()])
def test_other_5xx_and_timeouts_are_retried_then_fail_with_a_clear_error(no_sleep, failure):
    api = ScriptedApi([failure, failure, "ok"])
    assert ZabbixApiSource(Settings(), api=api).call("history.get", {}) == "ok"
    assert api.calls == 3 and len(no_sleep) == 2
    api = ScriptedApi([failure] * 10)
    with pytest.raises(SourceError, match=r"history.get failed 4 times: (HTTP 5\d\d|timed out)"):
        ZabbixApiSource(Settings(), api=api, retries=3).call("history.get", {})
    assert api.calls == 4


def test_a_client_error_is_not_retried(no_sleep):
    api = ScriptedApi([_http(403)])
    with pytest.raises(SourceError, match="HTTP 403"):
        ZabbixApiSource(Settings(), api=api).call("history.get", {})
    assert api.calls == 1 and no_sleep == []


def test_cli_exits_2_with_one_clear_line_when_the_api_keeps_answering_502(monkeypatch, capsys):
    # A local HTTP stand-in for the Zabbix frontend: version and login work, every other call 502s.
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from etl import cli
    from etl.sources import zabbix_api

    class Frontend(BaseHTTPRequestHandler):
        def do_POST(self):
            request = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answers = {"apiinfo.version": "6.0.40", "user.login": "0424bd59b807674191e7d77572075f33"}
            if request["method"] in answers:
                body, status = _json.dumps({"jsonrpc": "2.0", "result": answers[request["method"]],
                                            "id": request.get("id")}).encode(), 200
            else:
                body, status = b"<html>502 Bad Gateway</html>", 502
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Frontend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api_jsonrpc.php"
        monkeypatch.setenv("MONETL_ZABBIX_URL", url)
        monkeypatch.setattr(zabbix_api, "_sleep", lambda s: None)
        code = cli.main(["gaps", "zabbix", "--start", "2026-11-25T00:00Z", "--end", "2026-11-25T01:00Z"])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("monetl: error:")]
    assert errors == [f"monetl: error: zabbix API {url}: host.get failed 4 times: HTTP 502 Bad Gateway"], err


@pytest.mark.parametrize("parallel", [2, 3])
def test_parallel_requests_return_the_same_rows_as_one_at_a_time(tmp_path, parallel):
    start = 1_790_000_000
    # item 1 (float, with rows under an earlier uint type too) and item 2 (text): several plans, each
    # split into many requests by the small budget and the wall
    history = [{"itemid": 1, "vt": vt, "clock": start + s, "ns": k, "value": s + k}
               for vt in (0, 3) for s in range(0, 300, 2) for k in (0, 1)]
    history += [{"itemid": 2, "vt": 4, "clock": start + s, "ns": 0, "value": f"t{s}"} for s in range(300)]

    def rows(par):
        src = ZabbixApiSource(Settings(quarantine_dir=str(tmp_path)), api=FakeApi(history, wall=60), row_budget=50,
                              now=dt.datetime.fromtimestamp(start + 400, dt.timezone.utc),
                              parallel=par)
        window = Window(dt.datetime.fromtimestamp(start, dt.timezone.utc),
                        dt.datetime.fromtimestamp(start + 300, dt.timezone.utc))
        got = [(r["itemid"], r["clock"], r["ns"], r["value_type"]) for b in src.extract(window, "r", None)
               for r in b.to_pylist()]
        return got, src

    one, _ = rows(1)
    many, src = rows(parallel)
    assert len(one) == len(history) and sorted(many) == sorted(one)
    assert src.stats["too_big"] + src.stats["over_budget"] >= 1  # splits happened inside the threads too


def test_a_failure_in_a_parallel_request_reaches_the_caller(tmp_path):
    src = ZabbixApiSource(Settings(quarantine_dir=str(tmp_path)), api=ScriptedApi([_http(403)] * 50), parallel=2)
    with pytest.raises(SourceError):
        list(src._fetched(iter([(0, "raw", Span(0, 10), [1]), (0, "raw", Span(0, 10), [2])])))


def test_a_request_expected_to_fit_is_fetched_without_a_count_and_a_wrong_guess_is_cut():
    per_second = {s: 1 for s in range(600)}
    count, fetch, calls = _fake_store(per_second, wall=10**9)
    got = [r for rows in fetch_under_budget(Span(0, 599), [1, 2], 2000, count, fetch, estimate=lambda span, ids: 20)
           for r in rows]
    assert len(got) == 1200 and [c[0] for c in calls] == ["fetch"]
    calls.clear()
    stats = {}
    got = [r for rows in fetch_under_budget(Span(0, 599), [1, 2], 500, count, fetch, stats,
                                            estimate=lambda span, ids: 20) for r in rows]
    assert sorted(got) == sorted((i, s, 0) for s in range(600) for i in (1, 2))
    assert calls[0][0] == "fetch" and stats["over_budget"] >= 1  # the guess was wrong: cut and counted


def test_id_array_is_the_sql_psycopg2_makes_of_a_list():
    # Same text as psycopg2's own adaptation of a list, so PostgreSQL plans the statements as it did
    # when the list was a bound parameter (an index scan per id batch; a '{...}'::bigint[] literal
    # let it choose parallel hashed sequential scans instead).
    from psycopg2.extensions import adapt

    from etl.sources.zabbix_db import id_array

    for ids in ([7], [44518, 44519, 97030], [2**31 + 5, 1, 2**63 - 1], list(range(100000, 105000))):
        assert id_array(ids) == adapt(list(ids)).getquoted().decode()
    assert id_array([]) == "ARRAY[]::bigint[]"
    with pytest.raises((TypeError, ValueError)):
        id_array(["1); DROP TABLE items; --"])
