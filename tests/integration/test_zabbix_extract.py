"""Zabbix extraction against the real Zabbix 6.0 (API through PHP with its 128M memory limit) and its
PostgreSQL database: exact round trips per value type, the ~150k-row wall, trends for expired
hours, and API mode == DB mode."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from etl.quarantine import Quarantine
from etl.schema import point_schema
from etl.seed import delete_hosts, ensure_host, ensure_items, zabbix_api
from etl.seed.history_db import insert_history, writer_connection
from etl.sources import open_source
from etl.sources.zabbix_common import TooBig
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
RECENT = int((NOW - dt.timedelta(days=2)).timestamp())  # inside the items' 90d history
OLD = int((NOW - dt.timedelta(days=3)).timestamp())     # older than the 1h history of "old.float"
BIG_ROWS = 160_000  # above the ~150k float rows where history.get dies with HTTP 500
BIG_SPAN = BIG_ROWS // 4  # four values a second

FLOATS = [0.1, 1 / 3, -1e-300, 1.7976931348623157e308, 123456.789, 0.0]
TEXTS = ["交易前置 ok", "tab\tand\nnewline", "emoji 📈", "x" * 70_000, "", "quote \" and \\ backslash"]


@pytest.fixture(scope="module")
def fleet(zabbix_service, settings, tmp_path_factory):
    api = zabbix_api(settings)
    host = f"monetltest-src-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest", "monetltest-sources"], name=f"提取测试 {host}",
                         tags={"env": "test", "desk": "equities"})
    specs = [{"key": "t.float", "value_type": 0, "units": "ms", "tags": {"component": "latency"}},
             {"key": "t.char", "value_type": 1}, {"key": "t.log", "value_type": 2},
             {"key": "t.uint", "value_type": 3, "units": "B"}, {"key": "t.text", "value_type": 4},
             {"key": "big.float", "value_type": 0},
             {"key": "old.float", "value_type": 0, "history": "1h", "trends": "365d"}]
    ids = {k: int(v) for (_, k), v in ensure_items(api, hostid, specs).items()}
    t = RECENT
    rows = {
        0: [(ids["t.float"], t + i, 10 * i, v) for i, v in enumerate(FLOATS)]
        + [(ids["t.float"], t + 100, 1, 1.5), (ids["t.float"], t + 100, 2, 2.5)],  # same second twice
        1: [(ids["t.char"], t + i, i, v[:255]) for i, v in enumerate(TEXTS)],
        2: [(ids["t.log"], t + i, 999_999_999, v, t + i, "app", 2, 0) for i, v in enumerate(TEXTS)],
        3: [(ids["t.uint"], t + i, 0, v) for i, v in enumerate([0, 1, 2**53, 10**15])],
        4: [(ids["t.text"], t + i, 123, v) for i, v in enumerate(TEXTS)],
    }
    big = [(ids["big.float"], t + 1000 + i // 4, (i % 4) * 250_000_000, i * 0.5) for i in range(BIG_ROWS)]
    old = [(ids["old.float"], OLD + m * 60, 0, float(m)) for m in range(180)]  # 3 hours, one a minute
    try:
        with writer_connection(settings) as conn:
            for value_type, data in rows.items():
                insert_history(conn, value_type, data)
            insert_history(conn, 0, big)
            insert_history(conn, 0, old)
            with conn.cursor() as cur:  # the hourly trends the server would have written
                cur.execute("INSERT INTO trends (itemid, clock, num, value_min, value_avg, value_max) "
                            "SELECT itemid, clock - clock %% 3600, count(*), min(value), avg(value), max(value) "
                            "FROM history WHERE itemid = %s GROUP BY 1, 2", (ids["old.float"],))
    except BaseException:
        delete_hosts(api, settings, [host])
        raise
    ro_url = f"postgresql+psycopg2://monetl_ro:monetl_ro@127.0.0.1:{settings.pg_port}/zabbix"
    test_settings = dataclasses.replace(settings, zabbix_db_url=type(settings.zabbix_db_url)(ro_url),
                                        quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    yield {"host": host, "ids": ids, "rows": rows, "settings": test_settings}
    delete_hosts(api, settings, [host])
    api.logout()


def _window(start: int, end: int) -> Window:
    return Window(dt.datetime.fromtimestamp(start, UTC), dt.datetime.fromtimestamp(end, UTC))


def _extract(fleet, mode: str, window: Window, **options) -> list[dict]:
    settings = fleet["settings"]
    with open_source("zabbix", settings, mode, hosts=[fleet["host"]], now=NOW, **options) as source, \
            Quarantine(settings, "zabbix", f"it-{mode}") as quarantine:
        batches = list(source.extract(window, "it-run", quarantine))
        assert quarantine.count == 0
    assert all(b.schema == point_schema() and b.num_rows <= 50_000 for b in batches)
    return [r for b in batches for r in b.to_pylist()]


@pytest.mark.parametrize("mode", ["api", "db"])
def test_every_value_type_round_trips_exactly(fleet, mode):
    points = _extract(fleet, mode, _window(RECENT, RECENT + 200))
    ids = fleet["ids"]
    by_key = {}
    for p in points:
        by_key.setdefault(p["key"], []).append(p)
    got_float = sorted((p["clock"], p["ns"], p["value"]) for p in by_key["t.float"])
    assert got_float == sorted((c, n, v) for _, c, n, v in fleet["rows"][0])
    assert [(p["clock"], p["ns"]) for p in by_key["t.float"] if p["clock"] == RECENT + 100] in (
        [(RECENT + 100, 1), (RECENT + 100, 2)], [(RECENT + 100, 2), (RECENT + 100, 1)])
    assert sorted(p["value"] for p in by_key["t.uint"]) == [0.0, 1.0, 1e15, float(2**53)]
    for key, value_type in (("t.char", 1), ("t.log", 2), ("t.text", 4)):
        expected = sorted((c, n, v) for _, c, n, v, *rest in fleet["rows"][value_type])
        got = sorted((p["clock"], p["ns"], p["value_text"]) for p in by_key[key])
        assert got == expected, key
        assert all(p["value"] is None and p["value_type"] == value_type for p in by_key[key])
    sample = by_key["t.float"][0]
    assert sample["itemid"] == ids["t.float"] and sample["units"] == "ms" and sample["resolution"] == "raw"
    assert sample["host_name"].startswith("提取测试") and sample["host_groups"] == ["monetltest", "monetltest-sources"]
    assert sample["tags"] == [{"tag": "component", "value": "latency"}, {"tag": "desk", "value": "equities"},
                              {"tag": "env", "value": "test"}]
    assert "big.float" not in by_key  # its rows start at +1000: outside [start, end)


def test_window_end_is_exclusive_and_start_inclusive(fleet):
    # t.float has a row at RECENT+1 (ns 10) and RECENT+2 (ns 20): [RECENT+1, RECENT+2) holds exactly one.
    points = _extract(fleet, "api", _window(RECENT + 1, RECENT + 2))
    assert [(p["key"], p["clock"]) for p in points if p["key"] == "t.float"] == [("t.float", RECENT + 1)]


def test_window_over_the_memory_wall_is_split_and_complete(fleet):
    settings, ids = fleet["settings"], fleet["ids"]
    start, end = RECENT + 1000, RECENT + 1000 + BIG_SPAN
    with open_source("zabbix", settings, "api", itemids=[ids["big.float"]], hosts=[fleet["host"]], now=NOW) as source:
        # The unsplit request really hits the wall (HTTP 500, empty body)...
        with pytest.raises(TooBig):
            source.call("history.get", {"history": 0, "itemids": [ids["big.float"]], "time_from": start,
                                        "time_till": end - 1, "output": ["itemid", "clock", "ns", "value"]})
        # ...and extraction still returns every row, once.
        with Quarantine(settings, "zabbix", "it-big") as quarantine:
            total, seen_sum, keys = 0, 0.0, set()
            for batch in source.extract(_window(start, end), "it-run", quarantine):
                assert batch.num_rows <= 50_000
                total += batch.num_rows
                seen_sum += sum(batch.column("value").to_pylist())
                keys.update(zip(batch.column("clock").to_pylist(), batch.column("ns").to_pylist()))
    assert total == BIG_ROWS and len(keys) == BIG_ROWS
    assert seen_sum == sum(i * 0.5 for i in range(BIG_ROWS))
    assert source.stats["over_budget"] >= 1


def test_old_windows_come_from_trends(fleet):
    window = _window(OLD, OLD + 3 * 3600)
    for mode in ("api", "db"):
        points = [p for p in _extract(fleet, mode, window) if p["key"] == "old.float"]
        assert [(p["clock"], p["resolution"]) for p in sorted(points, key=lambda p: p["clock"])] == [
            (OLD + h * 3600, "1h") for h in range(3)]
        first = min(points, key=lambda p: p["clock"])
        assert (first["value_min"], first["value_max"], first["value_count"]) == (0.0, 59.0, 60)
        assert first["value"] == pytest.approx(29.5)
    raw = [p for p in _extract(fleet, "db", window, use_trends="never") if p["key"] == "old.float"]
    assert len(raw) == 180 and {p["resolution"] for p in raw} == {"raw"}


def test_api_and_db_modes_give_identical_points(fleet):
    window = _window(OLD, RECENT + 1000 + 20)  # every value type, trends, and the start of the big item

    def canon(points):
        return sorted(tuple((k, str(v)) for k, v in sorted(p.items())) for p in points)

    api_points = _extract(fleet, "api", window)
    db_points = _extract(fleet, "db", window)
    assert len(api_points) == len(db_points) > 30
    assert canon(api_points) == canon(db_points)


@pytest.mark.parametrize("mode", ["api", "db"])
def test_count_per_bucket_matches_what_extract_returns(fleet, mode):
    window = _window(RECENT + 1000 - 3600, RECENT + 1000 + 3 * 3600)
    with open_source("zabbix", fleet["settings"], mode, hosts=[fleet["host"]], now=NOW) as source:
        counts = source.count(window, dt.timedelta(hours=1))
    points = _extract(fleet, mode, window)
    expected = {}
    for p in points:
        b = dt.datetime.fromtimestamp(p["clock"] - p["clock"] % 3600, UTC)
        expected[b] = expected.get(b, 0) + 1
    assert {b: n for b, n in counts.items() if n} == expected
    assert sum(counts.values()) == len(points) > 0


def test_db_fast_copy_path_equals_portable_cursor_path(fleet):
    window = _window(OLD, RECENT + 1000 + 20)
    fast = _extract(fleet, "db", window)
    portable = _extract(fleet, "db", window, fast_copy=False)
    key = lambda p: (p["itemid"], p["clock"], p["ns"], p["resolution"])  # noqa: E731
    assert sorted(fast, key=key) == sorted(portable, key=key)


def test_db_consumer_stopping_early_leaves_the_source_usable(fleet):
    settings, ids = fleet["settings"], fleet["ids"]
    window = _window(RECENT + 1000, RECENT + 1000 + BIG_SPAN)
    with open_source("zabbix", settings, "db", itemids=[ids["big.float"]], hosts=[fleet["host"]], now=NOW) as source, \
            Quarantine(settings, "zabbix", "it-early") as quarantine:
        batches = source.extract(window, "it-run", quarantine)
        first = next(batches)
        batches.close()  # mid-COPY
        assert first.num_rows == 50_000
        assert sum(b.num_rows for b in source.extract(window, "it-run", quarantine)) == BIG_ROWS


def test_api_token_login_reads_the_same_points(fleet, settings):
    api = zabbix_api(settings)
    admin = api.user.get(filter={"username": settings.zabbix_user}, output=["userid"])[0]["userid"]
    token_id = api.token.create(name=f"monetltest-{uuid.uuid4().hex[:8]}", userid=admin)["tokenids"][0]
    try:
        token = api.token.generate(token_id)[0]["token"]
        token_settings = dataclasses.replace(fleet["settings"], zabbix_token=type(settings.zabbix_token)(token),
                                             zabbix_password=type(settings.zabbix_password)("not-the-password"))
        window = _window(RECENT, RECENT + 200)
        with open_source("zabbix", token_settings, "api", hosts=[fleet["host"]], now=NOW) as source, \
                Quarantine(token_settings, "zabbix", "it-token") as quarantine:
            by_token = [r for b in source.extract(window, "it-run", quarantine) for r in b.to_pylist()]
        assert by_token and sorted(map(str, by_token)) == sorted(map(str, _extract(fleet, "api", window)))
    finally:
        api.token.delete(token_id)
        api.logout()


def test_failed_login_is_a_source_error_without_the_password(fleet):
    from etl.errors import SourceError

    wrong = dataclasses.replace(fleet["settings"], zabbix_password=type(fleet["settings"].zabbix_password)("Wr0ng-pass!"))
    with pytest.raises(SourceError) as failure:
        open_source("zabbix", wrong, "api").catalog()
    assert "Wr0ng-pass!" not in str(failure.value) and "login" in str(failure.value)
