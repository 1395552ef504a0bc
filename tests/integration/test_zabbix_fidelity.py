"""Source fidelity against the real Zabbix 6.0, its database and Elasticsearch, and the lake: history
written under an item's earlier value type (item.update mid-window), unsigned values near 2^64, log
items with all their fields, invalid unsigned values, and the global housekeeping override, in API
and DB mode. The oracle is a plain SELECT on the five history tables (psycopg2, not monetl), compared
with what a direct Elasticsearch search returns and what the lake holds after compaction.

Owns its host (random name, deleted afterwards), its index prefix, quarantine folder and lake."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest

from etl import ingest, quarantine
from etl.lake import compact_day, read_points
from etl.lake.storage import LocalStorage
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_host, ensure_items, insert_history, writer_connection, zabbix_api
from etl.sources import open_source
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UTC = dt.timezone.utc
PREFIX = f"monetltest-fidelity-{uuid.uuid4().hex[:6]}"
U64 = 2**64 - 1
EXTREMES = [0, 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 2, U64]
INVALID_UINT = ["-1", str(2**64), "99999999999999999999"]  # numeric(20) holds all three
# minute offset of each run's window inside the test hour; "cli" is `monetl ingest zabbix --mode db`
MODES = {"api": 0, "db": 30, "cli": 15}
SOURCE_MODE = {"api": "api", "db": "db", "cli": "db"}
TABLES = {0: "history", 1: "history_str", 2: "history_log", 3: "history_uint", 4: "history_text"}


def select_history(settings, itemids, window: Window) -> dict[tuple, dict]:
    """The oracle: every row of these items in the window from all five history tables."""
    rows = {}
    with writer_connection(settings) as conn, conn.cursor() as cur:
        for value_type, table in TABLES.items():
            extra = ', "timestamp", source, severity, logeventid' if value_type == 2 else ""
            cur.execute(f"SELECT itemid, clock, ns, value::text{extra} FROM {table} "
                        "WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s",
                        (list(itemids), window.start_s, window.end_s))
            for itemid, clock, ns, value, *log in cur.fetchall():
                row = {"value_type": value_type}
                if value_type == 0:
                    row["value"] = float(value)
                elif value_type == 3:
                    row["value_uint"] = int(value)
                else:
                    row["value_text"] = value
                if log:
                    row.update(zip(("log_timestamp", "log_source", "log_severity", "log_eventid"), log))
                rows[(itemid, clock, ns)] = row
    return rows


def es_docs(env, window: Window) -> dict[tuple, dict]:
    """Straight from Elasticsearch: the stored _source of every point of our host in the window."""
    env.client.indices.refresh(index=f"{PREFIX}-points-*")
    found = env.client.search(index=f"{PREFIX}-points-*", size=10_000, query={"bool": {"filter": [
        {"term": {"host": env.host}}, {"range": {"clock": {"gte": window.start_s, "lt": window.end_s,
                                                           "format": "epoch_second"}}}]}})
    return {(d["_source"]["itemid"], d["_source"]["clock"], d["_source"]["ns"]): d["_source"]
            for d in found["hits"]["hits"]}


def lake_rows(env, window: Window) -> dict[tuple, dict]:
    compact_day(env.settings, "zabbix", window.start.date(), delete=False, storage=env.storage)
    table = read_points(env.settings, "zabbix", window, hosts=[env.host], storage=env.storage)
    assert table.schema.field("value_uint").type.bit_width == 64 and str(table.schema.field("value_uint").type) == "uint64"
    return {(r["itemid"], r["clock"], r["ns"]): r for r in table.to_pylist()}


def assert_equal_to_db(point: dict, row: dict, where: str) -> None:
    assert point["value_type"] == row["value_type"], where
    if row["value_type"] == 0:
        assert point["value"] == row["value"] and point.get("value_uint") is None, where
    elif row["value_type"] == 3:
        assert type(point["value_uint"]) is int and point["value_uint"] == row["value_uint"], where
        assert point["value"] == float(row["value_uint"]), where
    else:
        assert point["value_text"] == row["value_text"] and point.get("value") is None, where
    for name in ("log_timestamp", "log_source", "log_severity", "log_eventid"):
        assert point.get(name) == row.get(name), (where, name)


@pytest.fixture(scope="module")
def env(settings, zabbix_service, elasticsearch_service, postgres_service, tmp_path_factory):
    """A host with: an item that was float and is unsigned now (item.update between its rows), one
    that was log and is character now, an unsigned item with extreme and invalid values, and a
    Windows-event-log-like log item. History two days back (raw, well inside 90d retention)."""
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX,
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    storage = LocalStorage(tmp_path_factory.mktemp("lake"))
    client = es_client(cfg)
    api = zabbix_api(cfg)
    host = f"monetltest-fidelity-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest"], name=f"保真 {host}")
    specs = [("was.float", 0), ("was.log", 2), ("u.extreme", 3), ("eventlog", 2)]
    ids = ensure_items(api, hostid, [{"key": k, "value_type": vt} for k, vt in specs])
    itemids = {k: int(ids[(hostid, k)]) for k, _ in specs}
    hour = (dt.datetime.now(UTC) - dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    base = int(hour.timestamp())
    with writer_connection(cfg) as conn:
        for minute in MODES.values():
            t0 = base + 60 * minute
            insert_history(conn, 0, [(itemids["was.float"], t0 + 1, 111, 0.1), (itemids["was.float"], t0 + 2, 0, -1e300)])
            insert_history(conn, 2, [(itemids["was.log"], t0 + 3, 5, "old log line", t0 - 100, "app", 2, 17)])
    api.item.update({"itemid": str(itemids["was.float"]), "value_type": 3})
    api.item.update({"itemid": str(itemids["was.log"]), "value_type": 1})
    changed = {i["itemid"]: i["value_type"] for i in api.item.get(itemids=[itemids["was.float"], itemids["was.log"]],
                                                                   output=["value_type"])}
    assert changed == {str(itemids["was.float"]): "3", str(itemids["was.log"]): "1"}
    with writer_connection(cfg) as conn, conn.cursor() as cur:
        for minute in MODES.values():
            t0 = base + 60 * minute
            insert_history(conn, 3, [(itemids["was.float"], t0 + 10, 0, U64), (itemids["was.float"], t0 + 11, 0, 7)])
            insert_history(conn, 1, [(itemids["was.log"], t0 + 12, 0, "now a character item")])
            insert_history(conn, 3, [(itemids["u.extreme"], t0 + 20 + i, i, v) for i, v in enumerate(EXTREMES)])
            for i, text in enumerate(INVALID_UINT):
                cur.execute("INSERT INTO history_uint (itemid, clock, ns, value) VALUES (%s, %s, %s, %s::numeric)",
                            (itemids["u.extreme"], t0 + 40 + i, 0, text))
            insert_history(conn, 2, [
                (itemids["eventlog"], t0 + 50, 1, "An account failed to log on.", t0 + 49,
                 "Microsoft-Windows-Security-Auditing", 7, 4625),
                (itemids["eventlog"], t0 + 51, 2, "服务已启动 service started", t0 + 51, "Service Control Manager", 1, 7036),
                (itemids["eventlog"], t0 + 52, 3, "plain log line, no event fields", 0, "", 0, 0)])
    yield dataclasses.make_dataclass("Env", ["settings", "client", "api", "host", "itemids", "hour", "storage"])(
        cfg, client, api, host, itemids, hour, storage)
    delete_hosts(api, cfg, [host])
    api.logout()
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def window_of(env, mode: str) -> Window:
    start = env.hour + dt.timedelta(minutes=MODES[mode])
    return Window(start, start + dt.timedelta(minutes=5))


def cli_ingest(env, window: Window):
    """`monetl ingest` in a subprocess; its summary line parsed into the fields the tests use."""
    environment = {**os.environ, "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_QUARANTINE_DIR": env.settings.quarantine_dir,
                   "COLUMNS": "500"}  # one line per fact in the printed summary
    done = subprocess.run([sys.executable, "-m", "etl", "ingest", "zabbix", "--mode", "db", "--host", env.host,
                           "--start", window.start.isoformat(), "--end", window.end.isoformat(), "--overlap", "0m"],
                          capture_output=True, text=True, env=environment, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    total = re.search(r"total\W+(\d+)\W+(\d+)\W+(\d+)", done.stdout)
    path = re.search(r"quarantine file:\s*(\S+)", done.stdout)
    assert total and path, done.stdout
    return types.SimpleNamespace(ok=True, points_loaded=int(total.group(2)), points_quarantined=int(total.group(3)),
                                 quarantine_path=path.group(1))


@pytest.fixture(scope="module")
def ingested(env):
    """Each mode ingests its own window once (the same rows in each): summaries by mode."""
    runs = {}
    for mode in MODES:
        if mode == "cli":
            runs[mode] = cli_ingest(env, window_of(env, mode))
        else:
            runs[mode] = ingest.run(env.settings, open_source("zabbix", env.settings, mode, hosts=[env.host]),
                                    window_of(env, mode), overlap=dt.timedelta(0))
    return runs


@pytest.mark.parametrize("mode", list(MODES))
def test_every_point_equals_its_database_row_in_elasticsearch_and_the_lake(env, ingested, mode):
    window = window_of(env, mode)
    expected = select_history(env.settings, env.itemids.values(), window)
    invalid = {k for k, r in expected.items() if r["value_type"] == 3 and r["value_uint"] > U64}
    invalid |= {k for k, r in expected.items() if r["value_type"] == 3 and r["value_uint"] < 0}
    assert len(invalid) == len(INVALID_UINT)
    valid = {k: r for k, r in expected.items() if k not in invalid}
    # 2 float + 1 log before the type changes, 2 uint + 1 char after, 8 extremes, 3 event-log lines
    assert len(valid) == 17
    summary = ingested[mode]
    assert summary.ok and summary.points_loaded == 17 and summary.points_quarantined == len(INVALID_UINT)
    docs = es_docs(env, window)
    assert set(docs) == set(valid)
    for key, row in valid.items():
        assert_equal_to_db(docs[key], row, f"{mode} ES {key}")
    lake = lake_rows(env, window)
    assert set(lake) == set(valid)
    for key, row in valid.items():
        assert_equal_to_db(lake[key], row, f"{mode} lake {key}")


@pytest.mark.parametrize("mode", list(MODES))
def test_history_of_the_earlier_value_type_keeps_its_own_type(env, ingested, mode):
    window, ids = window_of(env, mode), env.itemids
    t0 = window.start_s
    docs = es_docs(env, window)
    assert docs[(ids["was.float"], t0 + 1, 111)]["value_type"] == 0  # written while the item was float
    assert docs[(ids["was.float"], t0 + 1, 111)]["value"] == 0.1
    assert docs[(ids["was.float"], t0 + 10, 0)]["value_uint"] == U64  # after item.update to unsigned
    old_log = docs[(ids["was.log"], t0 + 3, 5)]
    assert (old_log["value_type"], old_log["log_source"], old_log["log_eventid"]) == (2, "app", 17)
    assert docs[(ids["was.log"], t0 + 12, 0)]["log_source"] is None
    # gaps counts the earlier types' rows too: nothing missing for the changed items
    changed = open_source("zabbix", env.settings, SOURCE_MODE[mode], hosts=[env.host],
                          itemids=[ids["was.float"], ids["was.log"]])
    counts = changed.count(window, dt.timedelta(minutes=5))
    assert sum(counts.values()) == 6


@pytest.mark.parametrize("mode", list(MODES))
def test_unsigned_values_outside_uint64_are_quarantined_with_the_reason(env, ingested, mode):
    entries = [e for e in quarantine.read(ingested[mode].quarantine_path)
               if e["record"].get("itemid") == env.itemids["u.extreme"]]
    assert sorted(str(e["record"]["value"]) for e in entries) == sorted(INVALID_UINT)
    for entry in entries:
        assert entry["reason"].startswith("unsigned value outside 0..18446744073709551615"), entry["reason"]
        assert entry["stage"] == "extract"


def test_log_fields_are_searchable_in_elasticsearch(env, ingested):
    env.client.indices.refresh(index=f"{PREFIX}-points-*")
    found = env.client.search(index=f"{PREFIX}-points-*", query={"bool": {"filter": [
        {"term": {"host": env.host}}, {"term": {"log_eventid": 4625}},
        {"term": {"log_source": "Microsoft-Windows-Security-Auditing"}}]}})
    assert found["hits"]["total"]["value"] == len(MODES)
    exact = env.client.search(index=f"{PREFIX}-points-*", query={"bool": {"filter": [
        {"term": {"host": env.host}}, {"term": {"value_uint": str(2**64 - 2)}}]}})
    assert exact["hits"]["total"]["value"] == len(MODES)  # 2^64-1 is not matched: unsigned_long is exact


def test_api_reads_the_global_housekeeping_override_like_db_mode(env):
    """Zabbix 6.0 with the global history/trends override on (set through housekeeping.update and
    restored afterwards: the server is shared). Long periods, so another suite's split between
    history and trends does not change while it is on."""
    api = env.api
    keys = ["hk_history_global", "hk_history", "hk_trends_global", "hk_trends"]
    before = {k: v for k, v in api.housekeeping.get(output=keys).items() if k in keys}
    try:
        api.housekeeping.update({"hk_history_global": 1, "hk_history": "3650d", "hk_trends_global": 1,
                                 "hk_trends": "3653d"})
        retention = {}
        for mode in ("api", "db"):
            _, retention[mode] = open_source("zabbix", env.settings, mode, hosts=[env.host]).catalog()
        assert retention["api"] == retention["db"]
        assert {(r.history_s, r.trends_s) for r in retention["api"].values()} == {(3650 * 86400, 3653 * 86400)}
    finally:
        api.housekeeping.update(before)
    assert {k: v for k, v in api.housekeeping.get(output=keys).items() if k in keys} == before
    _, restored = open_source("zabbix", env.settings, "api", hosts=[env.host]).catalog()
    assert {r.history_s for r in restored.values()} != {3650 * 86400}
