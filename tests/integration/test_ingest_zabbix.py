"""Zabbix -> validation -> Elasticsearch against the real services: exact round trip of every value
type, late values via the overlap, idempotent re-runs, a killed run converging, bad values in
quarantine while the rest loads, replay, gaps + backfill, refused documents quarantined at load.

Each test module owns its hosts (random names, deleted afterwards), its index prefix and its
quarantine folder, so it never sees or deletes another suite's data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from etl import ingest, quarantine
from etl.schema import point_id
from etl.search import scan
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_host, ensure_items, insert_history, writer_connection, zabbix_api
from etl.sources import open_source
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-ingest"
UTC = dt.timezone.utc
ITEMS = [  # key, value_type
    ("t.float", 0), ("t.char", 1), ("t.log", 2), ("t.uint", 3), ("t.text", 4),
]


@pytest.fixture(scope="module")
def env(settings, zabbix_service, elasticsearch_service, tmp_path_factory):
    """Own host with one item per value type, own prefix and quarantine; a window 3 h back."""
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX,
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    api = zabbix_api(cfg)
    host = f"monetltest-ingest-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest"], name=f"采集测试 {host}", tags={"env": "test"})
    ids = ensure_items(api, hostid, [{"key": k, "name": f"item {k}", "value_type": vt, "units": "%" if vt == 0 else "",
                                      "tags": {"component": k.split(".")[1]}} for k, vt in ITEMS])
    itemids = {k: int(ids[(hostid, k)]) for k, _ in ITEMS}
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=4)
    yield dataclasses.make_dataclass("Env", ["settings", "client", "host", "itemids", "hour"])(
        cfg, client, host, itemids, hour)
    delete_hosts(api, cfg, [host])
    api.logout()
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def source(env, mode="api"):
    return open_source("zabbix", env.settings, mode, hosts=[env.host])


def insert(env, rows_by_type: dict[int, list[tuple]]) -> None:
    with writer_connection(env.settings) as conn:
        for value_type, rows in rows_by_type.items():
            insert_history(conn, value_type, rows)


def log_row(itemid, clock, ns, value):
    return (itemid, clock, ns, value, 0, "", 0, 0)


def es_points(env, window) -> list[dict]:
    return scan.documents(env.client, PREFIX, "zabbix", window)


@pytest.mark.parametrize("mode,minute", [("api", 0), ("db", 55)])
def test_every_value_type_round_trips_exactly(env, mode, minute):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 60 * minute
    window = Window(env.hour + dt.timedelta(minutes=minute), env.hour + dt.timedelta(minutes=minute + 5))
    insert(env, {
        0: [(ids["t.float"], t0 + 10, 123456789, 0.1), (ids["t.float"], t0 + 10, 987654321, -2.5e-7)],
        1: [(ids["t.char"], t0 + 11, 1, "状态 OK")],
        2: [log_row(ids["t.log"], t0 + 12, 999999999, 'line with "quotes" and \\ backslash')],
        3: [(ids["t.uint"], t0 + 13, 0, 18446744073709551615), (ids["t.uint"], t0 + 14, 5, 42)],
        4: [(ids["t.text"], t0 + 15, 7, "多行\ntext\twith tabs")],
    })
    summary = ingest.run(env.settings, source(env, mode), window, overlap=dt.timedelta(0))
    assert summary.ok and summary.points_quarantined == 0 and summary.mode == mode
    assert summary.loaded == {"float": 2, "char": 1, "log": 1, "uint": 2, "text": 1}
    docs = {(d["itemid"], d["clock"], d["ns"]): d for d in es_points(env, window)}
    assert len(docs) == 7
    assert docs[(ids["t.float"], t0 + 10, 123456789)]["value"] == 0.1
    assert docs[(ids["t.float"], t0 + 10, 987654321)]["value"] == -2.5e-7  # same second, both survive
    assert docs[(ids["t.char"], t0 + 11, 1)]["value_text"] == "状态 OK"
    assert docs[(ids["t.log"], t0 + 12, 999999999)]["value_text"] == 'line with "quotes" and \\ backslash'
    assert docs[(ids["t.uint"], t0 + 13, 0)]["value"] == float(18446744073709551615)
    assert docs[(ids["t.uint"], t0 + 13, 0)]["value_uint"] == 18446744073709551615  # exact, not via float
    assert (docs[(ids["t.log"], t0 + 12, 999999999)]["log_source"], docs[(ids["t.float"], t0 + 10, 123456789)]["log_source"]) == ("", None)
    assert docs[(ids["t.text"], t0 + 15, 7)]["value_text"] == "多行\ntext\twith tabs"
    first = docs[(ids["t.float"], t0 + 10, 123456789)]
    assert first["_id"] == point_id("zabbix", ids["t.float"], t0 + 10, 123456789)
    assert first["@timestamp"].endswith(".123456789Z")
    assert first["host"] == env.host and first["host_name"].startswith("采集测试")
    assert {"tag": "component", "value": "float"} in first["tags"]
    assert first["run_id"] == ingest.run_id_for("zabbix", window)


def test_late_value_is_picked_up_by_the_next_runs_overlap(env):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 600
    first_window = Window(env.hour + dt.timedelta(minutes=10), env.hour + dt.timedelta(minutes=15))
    insert(env, {0: [(ids["t.float"], t0 + 30, 0, 1.0)]})
    ingest.run(env.settings, source(env), first_window)
    insert(env, {0: [(ids["t.float"], t0 + 31, 0, 2.0)]})  # arrives after its window was loaded
    second = ingest.run(env.settings, source(env), Window(first_window.end, first_window.end + dt.timedelta(minutes=5)))
    assert second.loaded.get("float") == 2  # both values of the previous window, re-read by the overlap
    values = sorted(d["value"] for d in es_points(env, first_window))
    assert values == [1.0, 2.0]


def test_same_window_twice_leaves_identical_counts(env):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 1200
    window = Window(env.hour + dt.timedelta(minutes=20), env.hour + dt.timedelta(minutes=25))
    insert(env, {3: [(ids["t.uint"], t0 + i, i, i) for i in range(50)]})
    first = ingest.run(env.settings, source(env), window)
    docs_first = es_points(env, window)
    second = ingest.run(env.settings, source(env), window)
    docs_second = es_points(env, window)
    assert first.points_loaded == second.points_loaded and first.loaded["uint"] == 50
    assert len(docs_second) == len(docs_first) == 50
    assert sorted(d["_id"] for d in docs_first) == sorted(d["_id"] for d in docs_second)


KILL_SCRIPT = """
import dataclasses, datetime as dt, sys
from etl import ingest
from etl.config import load
from etl.sources import open_source
from etl.window import Window
settings = dataclasses.replace(load(), es_index_prefix=sys.argv[1], quarantine_dir=sys.argv[2])
window = Window.parse(sys.argv[4], sys.argv[5])
def on_chunk(done):
    print("CHUNK", done, flush=True)
    import time; time.sleep(30)  # the parent kills us here, after the first acknowledged request
ingest.run(settings, open_source("zabbix", settings, "api", hosts=[sys.argv[3]]), window,
           overlap=dt.timedelta(0), on_chunk=on_chunk, chunk_docs=100)
"""


def test_run_killed_after_first_bulk_chunk_converges_on_rerun(env):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 1800
    window = Window(env.hour + dt.timedelta(minutes=30), env.hour + dt.timedelta(minutes=35))
    insert(env, {0: [(ids["t.float"], t0 + i // 4, (i % 4) * 1000, float(i)) for i in range(1000)]})
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, PREFIX, env.settings.quarantine_dir, env.host,
                             window.start.isoformat(), window.end.isoformat()],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert line.startswith("CHUNK 100"), line
    env.client.indices.refresh(index=f"{PREFIX}-points-*")
    partial = scan.count(env.client, PREFIX, "zabbix", window)
    assert 100 <= partial < 1000
    summary = ingest.run(env.settings, source(env), window, overlap=dt.timedelta(0))
    docs = es_points(env, window)
    assert summary.points_loaded == 1000
    assert len(docs) == 1000 and len({d["_id"] for d in docs}) == 1000
    assert sorted(d["value"] for d in docs) == [float(i) for i in range(1000)]


def test_bad_values_are_quarantined_with_reasons_and_replay_loads_fixed_ones(env):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 2400
    window = Window(env.hour + dt.timedelta(minutes=40), env.hour + dt.timedelta(minutes=45))
    insert(env, {
        0: [(ids["t.float"], t0 + 1, 0, 5.0), (ids["t.float"], t0 + 2, 0, float("nan")),
            (ids["t.float"], t0 + 3, 0, float("inf"))],
        3: [(ids["t.uint"], t0 + 4, 0, 7)],
        4: [(ids["t.text"], t0 + 5, 0, "x" * 3_000_000), (ids["t.text"], t0 + 6, 0, "fine")],
    })
    summary = ingest.run(env.settings, source(env), window, overlap=dt.timedelta(0))
    assert summary.points_loaded == 3  # 5.0, 7, "fine"
    assert summary.points_quarantined == 3 and summary.ok
    entries = list(quarantine.read(summary.quarantine_path))
    by_clock = {e["record"]["clock"]: e for e in entries}
    assert set(by_clock) == {t0 + 2, t0 + 3, t0 + 5}
    for clock in (t0 + 2, t0 + 3):
        assert "not finite" in by_clock[clock]["reason"] or "NaN" in by_clock[clock]["reason"] \
            or "inf" in by_clock[clock]["reason"].lower(), by_clock[clock]["reason"]
    assert by_clock[t0 + 5]["reason"].startswith("text value longer than 1000000 characters")
    assert sorted(d["clock"] for d in es_points(env, window)) == [t0 + 1, t0 + 4, t0 + 6]

    # The operator fixes the NaN and the long text, leaves the infinity: replay loads two.
    fixed = Path(env.settings.quarantine_dir) / "fixed.jsonl"
    with open(fixed, "w", encoding="utf-8") as fh:
        for entry in entries:
            record = entry["record"]
            if record["clock"] == t0 + 2:
                record["value"] = 6.0
            elif record["clock"] == t0 + 5:
                record["value_text"] = record["value_text"][:100]
            elif record["clock"] == t0 + 3:
                record["value"] = float("inf")
            fh.write(json.dumps(entry) + "\n")
    report = ingest.replay(env.settings, fixed)
    assert (report.entries, report.loaded, report.still_bad) == (3, 2, 1)
    still = list(quarantine.read(report.quarantine_path))
    assert [e["record"]["clock"] for e in still] == [t0 + 3]
    assert still[0]["reason"].startswith("numeric value not finite")
    docs = {d["clock"]: d for d in es_points(env, window)}
    assert docs[t0 + 2]["value"] == 6.0 and docs[t0 + 5]["value_text"] == "x" * 100
    assert t0 + 3 not in docs


def test_gaps_finds_a_deleted_hour_and_backfill_fills_exactly_it(env):
    ids = env.itemids
    start = env.hour - dt.timedelta(hours=6)
    window = Window(start, start + dt.timedelta(hours=3))
    rows = [(ids["t.float"], int(start.timestamp()) + i * 600, 0, float(i)) for i in range(18)]
    insert(env, {0: rows})
    ingest.run(env.settings, source(env), window, overlap=dt.timedelta(0))
    assert ingest.gaps(env.settings, source(env), window).gaps == []
    hole = Window(start + dt.timedelta(hours=1), start + dt.timedelta(hours=2))
    # (the minimal Elasticsearch distribution has no delete_by_query: delete the hour's ids)
    doomed = es_points(env, hole)
    assert len(doomed) == 6
    for doc in doomed:
        env.client.delete(index=f"{PREFIX}-points-zabbix-{hole.start:%Y.%m.%d}", id=doc["_id"])
    env.client.indices.refresh(index=f"{PREFIX}-points-*")
    report = ingest.gaps(env.settings, source(env), window)
    assert [(b.start, b.source_count, b.es_count, b.status) for b in report.gaps] == [(hole.start, 6, 0, "missing")]
    report, summaries = ingest.backfill(env.settings, source(env), window)
    assert [s.window for s in summaries] == [str(hole)]
    assert summaries[0].points_loaded == 6
    assert ingest.gaps(env.settings, source(env), window).gaps == []


def test_documents_elasticsearch_refuses_go_to_quarantine_at_load(env):
    """A daily index created by hand with a clashing mapping: its documents are refused one by one,
    quarantined with stage "load", and the run reports the failure; other days still load."""
    cfg = dataclasses.replace(env.settings, es_index_prefix=f"{PREFIX}-clash")
    # two days back: no other test of the module writes there (the gaps test's 3 hours reach midnight
    # of the day before when the suite runs between 03:00 and 06:00 UTC)
    ids, day = env.itemids, env.hour - dt.timedelta(days=2)
    day_start = day.replace(hour=23, minute=55)
    window = Window(day_start, day_start + dt.timedelta(minutes=10))  # crosses midnight
    t0 = int(day_start.timestamp())
    insert(env, {0: [(ids["t.float"], t0 + 60, 0, 1.0), (ids["t.float"], t0 + 420, 0, 2.0)]})
    clashing = f"{PREFIX}-clash-points-zabbix-{day_start:%Y.%m.%d}"
    env.client.indices.create(index=clashing, mappings={"properties": {"host": {"type": "long"}}})
    try:
        summary = ingest.run(cfg, source(env), window, overlap=dt.timedelta(0))
        assert not summary.ok and summary.load_failures == 1 and summary.points_loaded == 1
        (entry,) = quarantine.read(summary.quarantine_path)
        assert entry["stage"] == "load" and entry["record"]["clock"] == t0 + 60
        assert "HTTP 400" in entry["reason"]
    finally:
        env.client.indices.delete(index=f"{PREFIX}-clash-points-*", ignore_unavailable=True, allow_no_indices=True)


def monetl(env, *args, extra_env=None):
    environment = {**os.environ, "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_QUARANTINE_DIR": env.settings.quarantine_dir,
                   **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=environment,
                          cwd=Path(__file__).resolve().parents[2], timeout=300)


def test_cli_ingest_then_gaps_and_exit_codes(env):
    ids, t0 = env.itemids, int(env.hour.timestamp()) + 3000
    window = Window(env.hour + dt.timedelta(minutes=50), env.hour + dt.timedelta(minutes=55))
    insert(env, {0: [(ids["t.float"], t0 + i, 0, float(i)) for i in range(20)]})
    span = ["--start", window.start.isoformat(), "--end", window.end.isoformat(), "--host", env.host]
    done = monetl(env, "ingest", "zabbix", *span, "--mode", "db", "--overlap", "0m")
    assert done.returncode == 0, done.stderr
    assert "zabbix/db" in done.stdout and "float" in done.stdout and "total" in done.stdout
    assert ingest.run_id_for("zabbix", window) in done.stdout
    assert len(es_points(env, window)) == 20
    gaps_out = monetl(env, "gaps", "zabbix", *span, "--bucket", "5m", "--all")
    assert gaps_out.returncode == 0, gaps_out.stdout + gaps_out.stderr
    assert "0 bucket(s) missing or short" in gaps_out.stdout
    missing = monetl(env, "replay", str(Path(env.settings.quarantine_dir) / "no-such.jsonl"))
    assert missing.returncode == 2 and "nothing to replay" in missing.stderr


def test_cli_error_names_the_problem_without_credentials(env):
    window = ["--start", env.hour.isoformat(), "--end", (env.hour + dt.timedelta(minutes=5)).isoformat()]
    done = monetl(env, "ingest", "zabbix", *window, "--host", env.host, "--mode", "db",
                  extra_env={"MONETL_ES_URL": "http://ops:s3cr3t-pw@127.0.0.1:9", "MONETL_ES_PASSWORD": "s3cr3t-pw"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "s3cr3t-pw" not in done.stdout + done.stderr
    assert "monetl: error:" in done.stderr and "127.0.0.1:9" in done.stderr
