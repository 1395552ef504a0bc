"""The 10-minute overlap without write amplification, on the real Zabbix DB/API and Elasticsearch:
a sequence of 5-minute runs writes each point once (overlap points already stored are answered 409,
not rewritten), the index gathers no deleted documents, a late value inside the overlap still
arrives, and a re-run of a window after a fix at the source still overwrites the changed value.

Oracles: SELECT count(*) at the source, Elasticsearch's own index stats (docs.count, docs.deleted)
and a direct document fetch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from etl import ingest
from etl.schema import point_id
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_host, ensure_items, insert_history, writer_connection, zabbix_api
from etl.sources import open_source
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-overlap"
UTC = dt.timezone.utc
N_ITEMS = 10
FIVE = dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def env(settings, zabbix_service, elasticsearch_service, tmp_path_factory):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX,
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    api = zabbix_api(cfg)
    host = f"monetltest-overlap-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest"])
    ids = ensure_items(api, hostid, [{"key": f"o.f{i}", "value_type": 0} for i in range(N_ITEMS)])
    itemids = [int(ids[(hostid, f"o.f{i}")]) for i in range(N_ITEMS)]
    # Noon of a day 3 days back: every run's points land in one daily index.
    day = (dt.datetime.now(UTC) - dt.timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)
    yield dataclasses.make_dataclass("Env", ["settings", "client", "host", "itemids", "t0"])(
        cfg, client, host, itemids, day)
    delete_hosts(api, cfg, [host])
    api.logout()
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def minute_rows(env, start: dt.datetime, minutes: int, base: float = 0.0) -> list[tuple]:
    s0 = int(start.timestamp())
    return [(itemid, s0 + 60 * m + 7, 0, base + m) for m in range(minutes) for itemid in env.itemids]


def insert(env, rows) -> None:
    with writer_connection(env.settings) as conn:
        insert_history(conn, 0, rows)


def source_count(env, window: Window) -> int:
    with writer_connection(env.settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM history WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s",
                    (env.itemids, window.start_s, int(window.end.timestamp())))
        return cur.fetchone()[0]


def index_docs(env) -> tuple[int, int]:
    env.client.indices.refresh(index=f"{PREFIX}-points-*")
    stats = env.client.indices.stats(index=f"{PREFIX}-points-*", metric="docs")["_all"]["primaries"]["docs"]
    return stats["count"], stats["deleted"]


@pytest.mark.parametrize("mode", ["db", "api"])
def test_runs_write_each_point_once_and_late_values_still_arrive(env, mode):
    start = env.t0 + (dt.timedelta(hours=0) if mode == "db" else dt.timedelta(hours=2))
    insert(env, minute_rows(env, start, 40))
    windows = [Window(start + FIVE * k, start + FIVE * (k + 1)) for k in range(8)]
    late_at = None
    for k, window in enumerate(windows):
        if k == 5:  # a value for window 3, which is loaded already, arrives now: the overlap picks it up
            late_at = int(windows[3].start.timestamp()) + 31
            insert(env, [(env.itemids[0], late_at, 5, -1.0)])
        summary = ingest.run(env.settings, open_source("zabbix", env.settings, mode, hosts=[env.host]), window)
        assert summary.ok
        written = summary.points_loaded - summary.already_stored
        new = source_count(env, window) + (1 if k == 5 else 0)
        # the window's own points plus the one late value; the re-read overlap is not rewritten
        assert written == new, (k, summary.to_dict())
        if k >= 2:
            overlap_points = source_count(env, window.widened(before=2 * FIVE)) - source_count(env, window)
            # read and found stored, or not read at all because the counts matched the memory
            assert summary.already_stored == overlap_points - (1 if k == 5 else 0)
    count, deleted = index_docs(env)
    assert deleted == 0
    assert count == source_count(env, Window(windows[0].start, windows[-1].end)) + _earlier(env, mode)
    assert _fetch(env, point_id("zabbix", env.itemids[0], late_at, 5))["value"] == -1.0


def _earlier(env, mode: str) -> int:
    """Points the other parametrisation left in the same index (db runs first)."""
    other = env.t0 if mode == "api" else None
    if other is None:
        return 0
    return source_count(env, Window(other, other + 8 * FIVE))


def _fetch(env, doc_id: str) -> dict:
    found = env.client.search(index=f"{PREFIX}-points-*", query={"ids": {"values": [doc_id]}})["hits"]["hits"]
    assert len(found) == 1, doc_id
    return found[0]["_source"]


def test_a_rerun_after_a_fix_overwrites_the_changed_value(env):
    start = env.t0 + dt.timedelta(hours=4)
    insert(env, minute_rows(env, start, 10))
    window = Window(start, start + FIVE)
    ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]), window)
    clock = int(start.timestamp()) + 60 + 7
    with writer_connection(env.settings) as conn, conn.cursor() as cur:  # the source corrected the value
        cur.execute("UPDATE history SET value = 99.5 WHERE itemid = %s AND clock = %s AND ns = 0",
                    (env.itemids[1], clock))
        assert cur.rowcount == 1
    # the next run's overlap does not rewrite stored points...
    ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]),
               Window(window.end, window.end + FIVE))
    assert _fetch(env, point_id("zabbix", env.itemids[1], clock, 0))["value"] == 1.0
    # ...re-running the window itself does (the replay of a fixed window)
    again = ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]), window)
    assert again.already_stored == 0
    assert _fetch(env, point_id("zabbix", env.itemids[1], clock, 0))["value"] == 99.5


def indexing(env) -> tuple[int, int]:
    """(index_total, index_failed) of the module's indices: Elasticsearch's own count of documents
    it indexed and refused (a `create` of a stored id counts as failed)."""
    stats = env.client.indices.stats(index=f"{PREFIX}-points-*", metric="indexing")["_all"]["primaries"]
    stats = stats.get("indexing", {})  # no index yet
    return stats.get("index_total", 0), stats.get("index_failed", 0)


def test_steady_runs_send_only_new_points_and_late_values(env):
    """With the previous run's memory, the re-read overlap is not even sent: Elasticsearch indexes
    the window's points and the late value, and refuses nothing (no 409 to answer)."""
    start = env.t0 + dt.timedelta(hours=6)
    insert(env, minute_rows(env, start, 30))
    windows = [Window(start + FIVE * k, start + FIVE * (k + 1)) for k in range(5)]
    for k, window in enumerate(windows):
        if k == 3:
            late_at = int(windows[1].start.timestamp()) + 33
            insert(env, [(env.itemids[2], late_at, 9, -2.0)])
        before = indexing(env)
        summary = ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]), window)
        total, failed = (a - b for a, b in zip(indexing(env), before))
        assert summary.ok
        new = source_count(env, window) + (1 if k == 3 else 0)
        assert total == new, (k, total, new)
        if k >= 1:  # run 0 had no memory of its overlap (nothing there was stored)
            assert failed == 0, (k, failed)
            assert summary.already_stored == source_count(env, window.widened(before=2 * FIVE)) \
                - source_count(env, window) - (1 if k == 3 else 0)
        if k in (2, 4):  # the source counts match the memory: the overlap is not read at all
            assert summary.overlap_reread_s == 0, summary.to_dict()
            assert summary.overlap_settled == summary.already_stored > 0
            assert summary.points_read == source_count(env, window)
        if k == 3:  # only the slice holding the late value is read again (60 s or less)
            assert 0 < summary.overlap_reread_s <= 60, summary.to_dict()
    assert _fetch(env, point_id("zabbix", env.itemids[2], late_at, 9))["value"] == -2.0


def test_memory_of_a_deleted_index_is_not_trusted(env):
    """An index dropped (or restored) after a run: the next run's overlap restores what it re-reads,
    because the memory names the index by UUID and no longer matches."""
    start = env.t0 - dt.timedelta(days=1)
    insert(env, minute_rows(env, start, 15))
    windows = [Window(start + FIVE * k, start + FIVE * (k + 1)) for k in range(3)]
    for window in windows[:2]:
        assert ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]), window).ok
    index = f"{PREFIX}-points-zabbix-{start:%Y.%m.%d}"
    env.client.indices.delete(index=index)
    assert ingest.run(env.settings, open_source("zabbix", env.settings, "db", hosts=[env.host]), windows[2]).ok
    env.client.indices.refresh(index=index)
    stored = env.client.count(index=index, query={"term": {"host": env.host}})["count"]
    assert stored == source_count(env, Window(windows[0].start, windows[2].end))
