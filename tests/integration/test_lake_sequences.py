"""Operator sequences across Elasticsearch and the lake, on the real services: compact, re-ingest a
fragment, replay, race a write, kill -9 the compaction, late values, a scheduler catch-up racing
compaction. The oracle is `SELECT count(*)` on the Zabbix history tables (and direct Elasticsearch
counts); the lake day must end with exactly the source's points, each once, and no write block.

Own hosts (prefix monetltest-seq-*), own index prefix and lake; days in early November 2026 (inside
the items' 90-day history, past the retention and the late-value horizon)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from etl import ingest
from etl.lake import compact, write_block
from etl.schema import points_index
from etl.window import Window

from sequence_support import UTC, Fleet, fix_quarantine

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fleet(settings, zabbix_service, elasticsearch_service, postgres_service, tmp_path_factory):
    fleet = Fleet(settings, "monetltest-seq", tmp_path_factory.mktemp("seq"))
    yield fleet
    fleet.close()


def hour(day: dt.date, h: int) -> Window:
    start = dt.datetime.combine(day, dt.time(h), tzinfo=UTC)
    return Window(start, start + dt.timedelta(hours=1))


def test_compact_partial_reingest_compact_keeps_every_point(fleet):
    day = dt.date(2026, 11, 2)
    expected = fleet.seed_day(day)
    assert fleet.ingest_day(day).ok and fleet.es_count(day) == expected
    first = fleet.compact(day)
    assert first.verified and first.deleted and fleet.check(day).ok, fleet.check(day)

    # The repro: one hour re-ingested recreates the index with a fragment of the day.
    fragment = fleet.ingest(hour(day, 5))
    assert fragment.ok and fleet.es_count(day) == fragment.points_loaded < expected
    # The merge alone keeps the day (no reconciliation, which would backfill the hours first).
    second = compact.compact_day(fleet.settings, "zabbix", day, es=fleet.es)
    assert second.deleted and second.rows == expected
    check = fleet.check(day)
    assert check.ok and check.source == expected, check
    merge = fleet.manifest(day)["merge"]
    assert merge["kept_rows"] == expected - fragment.points_loaded
    assert merge["replaced_rows"] == fragment.points_loaded and merge["changed_rows"] == 0

    # Again through the CLI as an operator runs it (reconciliation on): still every point.
    fleet.ingest(hour(day, 17))
    cli = fleet.compact_cli(day)
    assert cli.returncode == 0 and "index deleted=True" in cli.stdout, cli.stderr
    check = fleet.check(day)
    assert check.ok and check.source == expected, check
    recon = fleet.manifest(day)["reconciliation"]
    assert recon["source_points"] == expected and recon["missing_after"] == 0


def test_replace_drops_only_when_asked_and_says_what_goes(fleet):
    day = dt.date(2026, 11, 3)
    expected = fleet.seed_day(day)
    fleet.ingest_day(day)
    fleet.compact(day, delete=False)
    es = fleet.es
    index = points_index(fleet.prefix, "zabbix", day)
    es.indices.delete(index=index)
    fleet.ingest(hour(day, 0))  # the index now holds one hour only
    cli = fleet.compact_cli(day, "--no-reconcile", "--replace", "--keep")
    assert cli.returncode == 0, cli.stderr
    assert "replaced:" in cli.stdout and f"{expected - 60 * len(fleet.items)} points of {len(fleet.items)} items" \
        in cli.stdout
    assert fleet.check(day).lake == 60 * len(fleet.items)
    # Reconciliation brings back what the operator dropped from the source (the source still has it).
    fleet.compact(day)
    assert fleet.check(day).ok


def test_replay_of_old_quarantine_after_compaction_then_compact(fleet):
    day = dt.date(2026, 11, 4)
    expected = fleet.seed_day(day)
    # A text value over the 1M-character limit: valid at the source, quarantined at validation.
    clock = int(dt.datetime.combine(day, dt.time(7, 0, 30), tzinfo=UTC).timestamp())
    from etl.seed import insert_history, writer_connection

    text_item = next(i for i, vt in fleet.items if vt == 4)
    with writer_connection(fleet.settings) as conn:
        insert_history(conn, 4, [(text_item, clock, 5, "x" * 1_000_001)])
    expected += 1
    summary = fleet.ingest_day(day)
    assert summary.points_quarantined == 1
    report = fleet.compact(day)
    assert report.deleted
    assert fleet.check(day).unique == expected - 1  # the long text is in quarantine
    assert fleet.manifest(day)["reconciliation"]["missing_after"] >= 0

    from pathlib import Path

    fixed = fix_quarantine(Path(summary.quarantine_path), lambda r: {**r, "value_text": r["value_text"][:1000]})  # the fix
    replayed = ingest.replay(fleet.settings, fixed, client=fleet.es)
    assert replayed.loaded >= 1 and fleet.es_count(day) >= 1
    fleet.compact(day)
    check = fleet.check(day)
    assert check.ok and check.source == expected, check


def test_write_racing_compaction_is_not_lost(fleet, monkeypatch):
    day = dt.date(2026, 11, 5)
    expected = fleet.seed_day(day)
    fleet.ingest_day(day)
    w = hour(day, 10)
    real_scan = compact.scan_day
    results, threads = [], []

    def scan_and_race(*args, **kwargs):
        scanned = real_scan(*args, **kwargs)
        # After the reconciliation and the scan: new values arrive and an ingest of their hour runs.
        results.append(fleet.insert(w.start, w.end, salt=1, offset=30))
        threads.append(threading.Thread(target=lambda: results.append(fleet.ingest(w))))
        threads[0].start()
        threads[0].join(timeout=10)  # a writer that waits for the block to lift is still waiting here
        return scanned

    monkeypatch.setattr(compact, "scan_day", scan_and_race)
    first = fleet.compact(day)
    monkeypatch.setattr(compact, "scan_day", real_scan)
    assert first.deleted and first.rows == expected  # the scan's snapshot, verified with the block on
    threads[0].join(timeout=300)
    added, raced = results
    if raced.ok:  # waited for the block, then loaded into a new index of the day
        assert fleet.es_count(day) == raced.points_loaded
    else:  # refused by the block: every refused point is in quarantine with the reason, replayable
        assert raced.load_failures == raced.points_read == 2 * added  # the hour: old and new points
        text = open(raced.quarantine_path, encoding="utf-8").read()
        assert text.count("cluster_block_exception") == raced.load_failures
        assert ingest.replay(fleet.settings, raced.quarantine_path, client=fleet.es).loaded >= added
    # No reconciliation this time: the raced points themselves must reach the lake.
    compact.compact_day(fleet.settings, "zabbix", day, es=fleet.es)
    check = fleet.check(day)
    assert check.ok and check.source == expected + added, check


@pytest.mark.parametrize("stage,day", [("reconcile", dt.date(2026, 11, 6)), ("block", dt.date(2026, 11, 7)),
                                       ("scan", dt.date(2026, 11, 8)), ("stage", dt.date(2026, 11, 9)),
                                       ("publish", dt.date(2026, 11, 10))])
def test_kill_9_during_compaction_then_rerun_is_exact(fleet, stage, day):
    fleet.seed_day(day)
    fleet.ingest_day(day)
    if stage in ("scan", "publish"):  # a lake copy exists already: the killed run was a merge
        fleet.compact(day, delete=False)
        fleet.ingest(hour(day, 3))
    assert fleet.compact_killed(day, stage) == -9
    if stage in ("block", "scan", "stage", "publish"):
        assert fleet.blocked(day)  # SIGKILL runs no finally: the block is left behind ...
        index = points_index(fleet.prefix, "zabbix", day)
        # ... and a compaction run over due days lifts it (its holder is gone)
        assert write_block.lift_stale(fleet.es, f"{fleet.prefix}-points-zabbix-*") == [index]
        assert not fleet.blocked(day)
        write_block.block(fleet.es, index, "pretend-killed")  # and the day's own re-run lifts it too
    rerun = fleet.compact_cli(day)
    assert rerun.returncode == 0, rerun.stderr
    check = fleet.check(day)
    assert check.ok and not check.index_left, check
    assert fleet.ingest(hour(day, 1)).ok  # writers are not stuck: the day's index takes writes again
    assert not fleet.blocked(day)
    fleet.compact(day)
    assert fleet.check(day).ok


def test_values_two_hours_late_reach_the_lake_through_reconciliation(fleet):
    day = dt.date(2026, 11, 11)
    fleet.seed_day(day)
    fleet.ingest_day(day)
    # A proxy delivers a buffer of 13:00-14:00 values two hours late: past the 10-minute overlap.
    late = hour(day, 13)
    added = fleet.insert(late.start, late.end, salt=2, offset=17)
    fleet.ingest(Window(late.end + dt.timedelta(hours=2), late.end + dt.timedelta(hours=3)),
                 overlap=dt.timedelta(minutes=10))
    report = fleet.compact(day)
    assert report.deleted and "backfilled" in " ".join(report.notes)
    check = fleet.check(day)
    assert check.ok, check
    assert fleet.manifest(day)["reconciliation"]["backfilled"] >= added

    # Even later than the horizon, after the index is gone: the next reconciliation of the day finds it.
    later = fleet.insert(hour(day, 20).start, hour(day, 20).end, salt=3, offset=41)
    assert later > 0 and not fleet.check(day).ok
    fleet.compact(day)
    check = fleet.check(day)
    assert check.ok, check


def test_eight_day_pause_catch_up_racing_compaction(fleet):
    days = [dt.date(2026, 11, 12) + dt.timedelta(days=n) for n in range(8)]
    for day in days:
        fleet.seed_day(day)
    step = dt.timedelta(hours=6)
    # Catch-up runs windows oldest first; compaction of each day fires when half its windows ran.
    for n, day in enumerate(days):
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        windows = [Window(start + i * step, start + (i + 1) * step) for i in range(4)]
        for i, window in enumerate(windows):
            assert fleet.ingest(window, overlap=dt.timedelta(minutes=10)).ok
            if i == 1:
                fleet.compact(day)
        if n:  # and the previous day's compaction repeats while this day catches up
            fleet.compact(days[n - 1])
    reports = compact.compact_older_than_retention(fleet.settings, "zabbix", es=fleet.es, reconcile=True, mode="db",
                                                   hosts=fleet.hosts)
    # The first window's 10-minute overlap reaches back into the day before: it is compacted again too.
    before = days[0] - dt.timedelta(days=1)
    assert {r.day for r in reports} <= set(days) | {before}
    for day in days + [before]:
        check = fleet.check(day)
        assert check.ok and not check.index_left, check
