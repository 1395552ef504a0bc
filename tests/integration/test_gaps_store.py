"""`gaps` / `backfill` / quarantine / replay against the real Zabbix, Elasticsearch and lake, each
checked against the source's own `SELECT count(*)` and direct Elasticsearch counts:

- a compacted day (index deleted) reports nothing missing; a late value then backfilled into it
  goes to Elasticsearch and the day counts once per point (union by id, not ES + lake);
- a quarantined invalid point shows as quarantined, not missing, and `gaps` exits 0; replaying
  the fixed record twice loads it once;
- `--host` filters both sides;
- `backfill` exits 1 naming the reason when a bucket stays short (Elasticsearch refuses the
  documents);
- re-running one window 8 times leaves one quarantine record per point and reason;
- kill -9 in the middle of quarantine writes leaves whole lines;
- the lake's point ids are read from HDFS by ranged reads.

Own hosts, index prefix, lake and quarantine folder; nothing of another suite is touched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from etl import ingest, quarantine, store
from etl.lake.compact import compact_day
from etl.lake.storage import LocalStorage, open_storage
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_host, ensure_items, insert_history, writer_connection, zabbix_api
from etl.sources import open_source
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-gapsq"
UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env(settings, postgres_service, zabbix_service, elasticsearch_service, tmp_path_factory):
    base = tmp_path_factory.mktemp("gapsq")
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX, quarantine_dir=str(base / "quarantine"),
                              lake_url=f"file://{base / 'lake'}")
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True)
    api = zabbix_api(cfg)
    tag = uuid.uuid4().hex[:8]
    hosts = {name: f"monetltest-gapsq-{tag}-{name}" for name in ("a", "b")}
    itemids = {}
    for name, host in hosts.items():
        hostid = ensure_host(api, host, ["monetltest"], name=f"缺口测试 {host}")
        ids = ensure_items(api, hostid, [{"key": "g.float", "name": "float", "value_type": 0},
                                         {"key": "g.text", "name": "text", "value_type": 4}])
        itemids[name] = {"float": int(ids[(hostid, "g.float")]), "text": int(ids[(hostid, "g.text")])}
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yield dataclasses.make_dataclass("Env", ["settings", "client", "hosts", "itemids", "today", "lake"])(
        cfg, client, hosts, itemids, today, base / "lake")
    delete_hosts(api, cfg, list(hosts.values()))
    api.logout()
    client.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True)


def src(env, *names, mode="db"):
    return open_source("zabbix", env.settings, mode, hosts=[env.hosts[n] for n in names])


def insert(env, value_type, rows):
    with writer_connection(env.settings) as conn:
        insert_history(conn, value_type, rows)


def source_count(env, table, itemids, window) -> int:
    """The oracle: the source's own count."""
    with writer_connection(env.settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s",
                    (list(itemids), window.start_s, window.end_s))
        return cur.fetchone()[0]


def es_count(env, window, host=None) -> int:
    """The oracle on the store side: a direct Elasticsearch count."""
    filters = [{"range": {"@timestamp": {"gte": window.start.isoformat(), "lt": window.end.isoformat()}}}]
    if host:
        filters.append({"term": {"host": host}})
    env.client.indices.refresh(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    return env.client.count(index=f"{PREFIX}-points-zabbix-*", query={"bool": {"filter": filters}},
                            ignore_unavailable=True, allow_no_indices=True)["count"]


def monetl(env, *args):
    environment = {**os.environ, "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_QUARANTINE_DIR": env.settings.quarantine_dir,
                   "MONETL_LAKE_URL": env.settings.lake_url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=environment,
                          cwd=REPO, timeout=300)


def span(window, *hosts):
    out = ["--start", window.start.isoformat(), "--end", window.end.isoformat(), "--mode", "db"]
    for host in hosts:
        out += ["--host", host]
    return out


def test_compacted_day_reports_nothing_missing_and_a_backfill_into_it_counts_once(env):
    day = env.today - dt.timedelta(days=3)
    window = Window(day, day + 4 * HOUR)
    item = env.itemids["a"]["float"]
    t0 = int(day.timestamp())
    insert(env, 0, [(item, t0 + i * 600, 17, float(i)) for i in range(24)])
    ingest.run(env.settings, src(env, "a"), window, overlap=dt.timedelta(0))
    assert ingest.gaps(env.settings, src(env, "a"), window).gaps == []

    report = compact_day(env.settings, "zabbix", day.date())
    assert report.verified and report.deleted
    assert not env.client.indices.exists(index=f"{PREFIX}-points-zabbix-{day:%Y.%m.%d}")
    after = ingest.gaps(env.settings, src(env, "a"), window)
    assert after.gaps == []
    assert [(b.source_count, b.es_count, b.lake_count, b.stored, b.status) for b in after.buckets] == \
        [(6, 0, 6, 6, "ok")] * 4
    cli = monetl(env, "gaps", "zabbix", *span(window, env.hosts["a"]), "--all")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "0 bucket(s) missing or short of 4" in cli.stdout

    # A value arrives late for hour 1 of the compacted day: the store is short of it by one point.
    late = t0 + 3600 + 330
    insert(env, 0, [(item, late, 5, 99.0)])
    hour1 = Window(day + HOUR, day + 2 * HOUR)
    assert source_count(env, "history", [item], hour1) == 7
    short = {b.start: b for b in ingest.gaps(env.settings, src(env, "a"), window).buckets}[hour1.start]
    assert (short.source_count, short.lake_count, short.stored, short.status) == (7, 6, 6, "short")

    result = ingest.backfill(env.settings, src(env, "a"), window)
    assert result.ok and result.still_short == []
    assert [s.window for s in result.summaries] == [str(hour1)]
    # The backfill wrote the hour to Elasticsearch (the next compaction merges it into the lake) ...
    assert es_count(env, hour1) == 7
    # ... and the union counts each point once: 7, not Elasticsearch's 7 + the lake's 6.
    done = {b.start: b for b in result.after.buckets}[hour1.start]
    assert (done.source_count, done.es_count, done.lake_count, done.stored, done.status) == (7, 7, 6, 7, "ok")
    assert result.after.gaps == []

    # Neither tier alone is complete: the lake has 6 of hour 2's 7 points, Elasticsearch 2 (the new
    # one and one the lake also holds). The union by id is exact: 7, not 8.
    late2 = t0 + 2 * 3600 + 330
    insert(env, 0, [(item, late2, 5, 98.0)])
    ingest.run(env.settings, src(env, "a"), Window(day + 2 * HOUR, day + 2 * HOUR + dt.timedelta(seconds=331)), overlap=dt.timedelta(0))
    hour2 = Window(day + 2 * HOUR, day + 3 * HOUR)
    assert es_count(env, hour2) == 2 and source_count(env, "history", [item], hour2) == 7
    both = {b.start: b for b in ingest.gaps(env.settings, src(env, "a"), window).buckets}[hour2.start]
    assert (both.source_count, both.es_count, both.lake_count, both.stored, both.status) == (7, 2, 6, 7, "ok")


def test_quarantined_point_is_not_missing_and_replay_twice_loads_once(env):
    hour = env.today - dt.timedelta(days=1) + 10 * HOUR
    window = Window(hour, hour + HOUR)
    item = env.itemids["a"]["float"]
    t0 = int(hour.timestamp())
    insert(env, 0, [(item, t0 + i * 60, 0, float(i)) for i in range(5)] + [(item, t0 + 3000, 0, float("nan"))])
    summary = ingest.run(env.settings, src(env, "a"), window, overlap=dt.timedelta(0))
    assert summary.points_quarantined == 1 and summary.ok
    assert source_count(env, "history", [item], window) == 6 and es_count(env, window) == 5

    (b,) = ingest.gaps(env.settings, src(env, "a"), window).buckets
    assert (b.source_count, b.stored, b.quarantined, b.missing, b.status) == (6, 5, 1, 0, "quarantined")
    (entry,) = quarantine.read(summary.quarantine_path)
    # DB mode refuses NaN while converting the row (stage extract), API mode at validation.
    assert b.reasons_text == f"{entry['reason'].split(':')[0]} x1"
    cli = monetl(env, "gaps", "zabbix", *span(window, env.hosts["a"]))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "quarantined" in cli.stdout and "1 point(s) quarantined" in cli.stdout

    # An extract-stage record names its source row well enough to be replayed once fixed.
    assert entry["record"]["host"] == env.hosts["a"] and entry["record"]["key"] == "g.float"
    assert entry["stage"] in ("extract", "validate")
    entry["record"]["value"] = 5.5  # the operator's fix
    fixed = Path(env.settings.quarantine_dir) / "fixed-nan.jsonl"
    fixed.write_text(json.dumps(entry) + "\n")
    first = ingest.replay(env.settings, fixed)
    assert (first.entries, first.loaded, first.already_replayed, first.still_bad) == (1, 1, 0, 0)
    second = ingest.replay(env.settings, fixed)
    assert (second.entries, second.loaded, second.already_replayed) == (1, 0, 1)
    assert "already replayed earlier (not loaded again)" in second.line()
    third = monetl(env, "replay", str(fixed))
    assert third.returncode == 0 and "loaded 0" in third.stdout and "already replayed" in third.stdout, third.stdout
    assert es_count(env, window) == 6
    (b,) = ingest.gaps(env.settings, src(env, "a"), window).buckets
    assert (b.stored, b.quarantined, b.status) == (6, 0, "ok")


def test_host_filter_applies_to_both_sides(env):
    hour = env.today - dt.timedelta(days=1) + 12 * HOUR
    window = Window(hour, hour + HOUR)
    t0 = int(hour.timestamp())
    insert(env, 0, [(env.itemids["a"]["float"], t0 + i * 60, 0, 1.0) for i in range(6)])
    insert(env, 0, [(env.itemids["b"]["float"], t0 + i * 60, 0, 2.0) for i in range(4)])
    ingest.run(env.settings, src(env, "a"), window, overlap=dt.timedelta(0))  # host b never ingested
    assert es_count(env, window, env.hosts["a"]) == 6 and es_count(env, window, env.hosts["b"]) == 0

    (b,) = ingest.gaps(env.settings, "zabbix", window, mode="db", hosts=[env.hosts["b"]]).buckets
    # Before: Elasticsearch counted host a's 6 points too, and b's shortfall showed as "extra".
    assert (b.source_count, b.es_count, b.status) == (4, 0, "missing")
    (a,) = ingest.gaps(env.settings, "zabbix", window, mode="db", hosts=[env.hosts["a"]]).buckets
    assert (a.source_count, a.es_count, a.status) == (6, 6, "ok")
    assert monetl(env, "gaps", "zabbix", *span(window, env.hosts["b"])).returncode == 1
    assert monetl(env, "gaps", "zabbix", *span(window, env.hosts["a"])).returncode == 0


def test_backfill_exits_1_naming_why_a_bucket_stays_short(env):
    day = env.today - dt.timedelta(days=5)
    window = Window(day + 5 * HOUR, day + 6 * HOUR)
    t0 = window.start_s
    insert(env, 0, [(env.itemids["a"]["float"], t0 + i * 60, 0, 3.0) for i in range(3)])
    clashing = f"{PREFIX}-points-zabbix-{day:%Y.%m.%d}"
    env.client.indices.create(index=clashing, mappings={"properties": {"host": {"type": "long"}}})
    try:
        done = monetl(env, "backfill", "zabbix", *span(window, env.hosts["a"]))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "still short after backfill" in done.stderr and "failed to load into Elasticsearch" in done.stderr
        result = ingest.backfill(env.settings, src(env, "a"), window)
        assert not result.ok
        ((b, why),) = result.still_short
        assert (b.source_count, b.stored, b.missing) == (3, 0, 3)
        assert "3 point(s) failed to load" in why
        # the refused points are named in gaps, and still count as missing (backfill retries them)
        assert "at load, still missing" in b.reasons_text
    finally:
        env.client.indices.delete(index=clashing, ignore_unavailable=True)
    # With the index fixed, the same backfill converges.
    result = ingest.backfill(env.settings, src(env, "a"), window)
    assert result.ok and es_count(env, window) == 3


def test_rerunning_a_window_eight_times_leaves_one_record_per_point_and_reason(env):
    start = env.today - dt.timedelta(days=1) + 14 * HOUR
    window = Window(start, start + dt.timedelta(minutes=5))
    t0 = window.start_s
    ids = env.itemids["b"]
    insert(env, 0, [(ids["float"], t0 + 1, 0, float("nan")), (ids["float"], t0 + 2, 0, float("inf")),
                    (ids["float"], t0 + 3, 0, 1.0)])
    insert(env, 4, [(ids["text"], t0 + 4, 0, "x" * 1_000_001), (ids["text"], t0 + 5, 0, "ok")])
    paths = set()
    for _ in range(8):
        summary = ingest.run(env.settings, src(env, "b"), window)  # default 10 min overlap
        assert summary.points_quarantined == 3
        paths.add(summary.quarantine_path)
    (path,) = paths
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 3  # 9 points x reasons would have been 24 lines before
    entries = [json.loads(line) for line in lines]
    assert len({e["key"] for e in entries}) == 3
    for e in entries:
        record = e["record"]
        assert (record["source"], record["host"]) == ("zabbix", env.hosts["b"]) and record["key"] in ("g.float", "g.text")
        assert e["key"].startswith(f"zabbix:{record['itemid']}:{record['clock']}:{record['ns']}:{e['stage']}:")


_WRITER = """
import sys
from etl.config import Settings
from etl.quarantine import Quarantine
q = Quarantine(Settings(quarantine_dir=sys.argv[1]), "points", "kill9")
i = 0
while True:
    q.add({"source": "zabbix", "itemid": 1, "clock": 1795564800 + i, "ns": 0, "value_text": "y" * 4_000_000},
          "text value longer than 1000000 characters", stage="validate")
    i += 1
"""


def test_kill_9_in_the_middle_of_quarantine_writes_leaves_whole_lines(tmp_path):
    folder = tmp_path / "q"
    path = folder / "points" / "kill9.jsonl"
    torn_seen = 0
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder)], env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while (not path.exists() or path.stat().st_size < (attempt + 1) * 30_000_000) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        data = path.read_bytes()
        torn_seen += not data.endswith(b"\n")
        problems: list[str] = []
        entries = list(quarantine.read(path, problems))
        complete = data.count(b"\n")
        assert len(entries) == complete and len(problems) == (0 if data.endswith(b"\n") else 1)
        # The next run appends after whole lines only: nothing glues onto a torn line.
        with quarantine.Quarantine(_settings(folder), "points", "kill9") as q:
            q.add({"source": "zabbix", "itemid": 2, "clock": 1795564800, "ns": attempt}, "bad", stage="validate")
        for line in path.read_bytes().splitlines():
            json.loads(line)
        assert path.read_bytes().endswith(b"\n")
    print(f"torn last lines left by kill -9: {torn_seen} of 3")


def _settings(folder):
    from etl.config import Settings

    return Settings(quarantine_dir=str(folder))


def test_lake_point_ids_read_from_hdfs_by_range(env, hdfs_service, tmp_path):
    """The same ids from a WebHDFS lake as from a local one (ranged reads, not whole files)."""
    from etl.lake import fixtures, layout
    from etl.lake.publish import write_parquet_file

    day = (env.today - dt.timedelta(days=9)).date()
    points = fixtures.synthetic_points("zabbix", day, hosts=["h1", "交易主机 01"], items_per_host=3,
                                       points_per_item=50)
    rel = layout.join(layout.points_partition("zabbix", day), layout.PART.format(0))
    local = LocalStorage(tmp_path / "lake")
    local.local_path(rel).parent.mkdir(parents=True)
    write_parquet_file(points, local.local_path(rel))
    window = Window(env.today - dt.timedelta(days=9, hours=-3), env.today - dt.timedelta(days=8, hours=1))
    url = f"webhdfs://127.0.0.1:{env.settings.hdfs_http_port}/monetltest/gapsq/{uuid.uuid4().hex[:10]}"
    remote = open_storage(env.settings, url)
    try:
        remote.upload(local.local_path(rel), rel)
        for hosts in (None, ["交易主机 01"]):
            expected = store.lake_ids(local, "zabbix", window, hosts=hosts)
            got = store.lake_ids(remote, "zabbix", window, hosts=hosts)
            assert 0 < expected.num_rows < points.num_rows
            assert sorted(tuple(r.values()) for r in got.to_pylist()) == \
                sorted(tuple(r.values()) for r in expected.to_pylist())
    finally:
        remote.delete("")
