"""The demo fleet seeder against the real Zabbix 6.0 + PostgreSQL: row counts per value type,
trends equal to an aggregation of the stored history, Unicode names through the API, and
re-seeding replaces rather than duplicates."""

from __future__ import annotations

import time
import uuid

import pytest

from etl.seed import delete_hosts, seed_fleet, writer_connection, zabbix_api
from etl.seed.fleet import load_fleet, plan_hosts

pytestmark = pytest.mark.integration

HOSTS, DAYS = 3, 1


@pytest.fixture(scope="module")
def seeded(zabbix_service, settings):
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    end = (int(time.time()) // 3600 - 2) * 3600 + 17 * 60  # a past end inside an hour
    result = seed_fleet(settings, hosts=HOSTS, days=DAYS, end=end, seed=11, prefix=prefix)
    yield prefix, end, result
    api = zabbix_api(settings)
    delete_hosts(api, settings, result.hosts)
    api.logout()


def _query(settings, sql, *params):
    with writer_connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _counts(settings, hosts):
    """value_type -> history rows of these hosts' items, counted in the table of that type."""
    out = {}
    for value_type, table in {0: "history", 1: "history_str", 2: "history_log", 3: "history_uint",
                              4: "history_text"}.items():
        out[value_type] = _query(settings, f"SELECT count(*) FROM {table} t JOIN items i ON i.itemid = t.itemid "
                                           "JOIN hosts h ON h.hostid = i.hostid WHERE h.host = ANY(%s)", hosts)[0][0]
    return out


def test_rows_per_value_type_follow_the_item_intervals(seeded, settings):
    prefix, end, result = seeded
    planned = plan_hosts(load_fleet(), HOSTS, prefix)
    expected = {vt: 0 for vt in range(5)}
    for host in planned:
        for item in host["items"]:
            if int(item["value_type"]) != 2:  # log items are jittered; counted below
                expected[int(item["value_type"])] += DAYS * 86400 // item["interval"]
    counts = _counts(settings, result.hosts)
    for vt in (0, 1, 3, 4):
        assert counts[vt] == expected[vt], vt
    log_slots = sum(DAYS * 86400 // i["interval"] for h in planned for i in h["items"] if int(i["value_type"]) == 2)
    assert 0.9 * log_slots <= counts[2] <= log_slots
    assert result.rows["history"] == counts[0] and result.rows["history_log"] == counts[2]
    assert result.items == sum(len(h["items"]) for h in planned) == HOSTS * 21  # 20 base items + 1 of the group
    bounds = _query(settings, "SELECT min(t.clock), max(t.clock), min(t.ns) FROM history t JOIN items i ON "
                              "i.itemid = t.itemid JOIN hosts h ON h.hostid = i.hostid WHERE h.host = ANY(%s)",
                    result.hosts)[0]
    assert bounds[0] >= end - DAYS * 86400 and bounds[1] < end and bounds[2] > 0


@pytest.mark.parametrize("history, trends, avg", [("history", "trends", "avg(value)"),
                                                   ("history_uint", "trends_uint", "trunc(sum(value) / count(*))")])
def test_trends_equal_hourly_aggregation_of_history(seeded, settings, history, trends, avg):
    _, _, result = seeded
    from_history = _query(settings, f"""
        SELECT t.itemid, t.clock - t.clock %% 3600 AS hour, count(*), min(t.value), {avg}, max(t.value)
        FROM {history} t JOIN items i ON i.itemid = t.itemid JOIN hosts h ON h.hostid = i.hostid
        WHERE h.host = ANY(%s) GROUP BY 1, 2 ORDER BY 1, 2""", result.hosts)
    stored = _query(settings, f"""
        SELECT t.itemid, t.clock, t.num, t.value_min, t.value_avg, t.value_max
        FROM {trends} t JOIN items i ON i.itemid = t.itemid JOIN hosts h ON h.hostid = i.hostid
        WHERE h.host = ANY(%s) ORDER BY 1, 2""", result.hosts)
    assert len(stored) == len(from_history) > 0
    assert len(stored) == result.rows[trends]
    for got, want in zip(stored, from_history):
        assert got[:4] == want[:4] and got[5] == want[5]
        assert float(got[4]) == pytest.approx(float(want[4]), rel=1e-12)
    # 1 day ending at :17 touches 25 hours: 24 partial/whole hours plus the first partial one.
    assert len({row[1] for row in stored}) == DAYS * 24 + 1


def test_unicode_names_and_values_round_trip_through_the_api(seeded, settings):
    prefix, end, result = seeded
    api = zabbix_api(settings)
    try:
        hosts = api.host.get(filter={"host": result.hosts}, output=["host", "name"], selectTags=["tag", "value"],
                             selectGroups=["name"])
        by_host = {h["host"]: h for h in hosts}
        trading = by_host[f"{prefix}trading-01"]
        assert trading["name"] == f"{prefix}交易服务器-01"
        assert [g["name"] for g in trading["groups"]] == ["trading"]
        assert {"tag": "env", "value": "demo"} in trading["tags"]
        item = api.item.get(hostids=[trading["hostid"]], filter={"key_": "system.cpu.util"},
                            output=["itemid", "units", "history", "trends", "type"], selectTags=["tag", "value"])[0]
        assert (item["units"], item["history"], item["trends"], item["type"]) == ("%", "90d", "365d", "2")
        assert item["tags"] == [{"tag": "component", "value": "cpu"}]
        # Exact values and ns from the API equal the rows in the database.
        api_rows = api.history.get(itemids=[item["itemid"]], history=0, time_from=end - 3600, time_till=end - 1,
                                   sortfield="clock", sortorder="ASC")
        db_rows = _query(settings, "SELECT clock, ns, value FROM history WHERE itemid = %s AND clock >= %s "
                                   "AND clock < %s ORDER BY clock", int(item["itemid"]), end - 3600, end)
        assert [(int(r["clock"]), int(r["ns"]), float(r["value"])) for r in api_rows] == db_rows
        assert len(db_rows) == 60
        log_item = api.item.get(hostids=[trading["hostid"]], filter={"key_": "log[/var/log/app/app.log]"},
                                output=["itemid"])[0]
        lines = api.history.get(itemids=[log_item["itemid"]], history=2, time_from=end - 86400,
                                output=["value", "severity", "source"])
        texts = [r["value"] for r in lines]
        stored = [r[0] for r in _query(settings, "SELECT value FROM history_log WHERE itemid = %s",
                                       int(log_item["itemid"]))]
        assert sorted(texts) == sorted(stored)
        assert any("登录成功" in t for t in texts) == any("登录成功" in t for t in stored)
    finally:
        api.logout()


def test_reseeding_replaces_the_window_and_is_deterministic(seeded, settings):
    prefix, end, first = seeded
    checksum_sql = ("SELECT count(*), md5(string_agg(concat_ws(':', i.key_, t.clock, t.ns, t.value), ',' "
                    "ORDER BY i.key_, h.host, t.clock)) FROM history t JOIN items i ON "
                    "i.itemid = t.itemid JOIN hosts h ON h.hostid = i.hostid WHERE h.host = ANY(%s)")
    before = _query(settings, checksum_sql, first.hosts)[0]
    counts_before = _counts(settings, first.hosts)
    again = seed_fleet(settings, hosts=HOSTS, days=DAYS, end=end, seed=11, prefix=prefix)
    assert _query(settings, checksum_sql, first.hosts)[0] == before
    assert _counts(settings, first.hosts) == counts_before
    assert sum(again.replaced.values()) == sum(counts_before.values())
    # A window shifted by 2 hours: the union of both windows, nothing twice.
    shifted = seed_fleet(settings, hosts=HOSTS, days=DAYS, end=end + 7200, seed=11, prefix=prefix)
    counts = _counts(settings, first.hosts)
    per_minute_float = sum(1 for h in plan_hosts(load_fleet(), HOSTS, prefix) for i in h["items"]
                           if int(i["value_type"]) == 0 and i["interval"] == 60)
    assert counts[0] == per_minute_float * (DAYS * 1440 + 120)
    dupes = _query(settings, "SELECT count(*) FROM (SELECT t.itemid, t.clock FROM history t JOIN items i ON "
                             "i.itemid = t.itemid JOIN hosts h ON h.hostid = i.hostid WHERE h.host = ANY(%s) "
                             "GROUP BY 1, 2 HAVING count(*) > 1) d", first.hosts)[0][0]
    assert dupes == 0
    assert shifted.rows["trends"] > 0
