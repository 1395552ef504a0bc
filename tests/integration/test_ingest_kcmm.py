"""KCMM (its real PostgreSQL database and a CSV export in an inbox) -> Elasticsearch: counts match the
source, re-runs converge, bad CSV rows (invalid UTF-8, text in a number column, ...) end in the
quarantine with a reason while the rest of the file loads."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from etl import ingest, quarantine
from etl.search import scan
from etl.search.client import es_client
from etl.sources import open_source
from etl.sources.kcmm_sample import machines, seed_db, write_csv_export
from etl.window import Window

pytestmark = pytest.mark.integration

PREFIX = "monetltest-ingest-kcmm"
UTC = dt.timezone.utc
OFFSET = 60  # desktops 1060.. are this module's own (the demo seeds 1000..1012)


@pytest.fixture(scope="module")
def env(settings, postgres_service, elasticsearch_service, tmp_path_factory):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX,
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    yield cfg, client
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def test_kcmm_db_window_loads_every_sample_once(env):
    cfg, client = env
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    window = Window(hour, hour + dt.timedelta(hours=1))
    seed_db(cfg, window.start, window.end, machine_count=2, machine_offset=OFFSET)
    hosts = [m.machine_name for m in machines(OFFSET + 2)[OFFSET:]]
    with open_source("kcmm", cfg, "db", hosts=hosts) as source:
        expected = sum(source.count(window, dt.timedelta(hours=1)).values())
        first = ingest.run(cfg, source, window, overlap=dt.timedelta(0))
        second = ingest.run(cfg, source, window, overlap=dt.timedelta(0))
    assert expected > 100
    assert first.points_read == expected and first.points_loaded == expected - sum(first.quarantined.values())
    stored = scan.count(client, PREFIX, "kcmm", window)
    assert stored == first.points_loaded == second.points_loaded
    report = ingest.gaps(cfg, "kcmm", window, mode="db", client=client, hosts=hosts)
    assert report.buckets and all(b.es_count == b.source_count for b in report.buckets), report.buckets


def test_kcmm_csv_bad_rows_are_quarantined_and_the_rest_loads(env, tmp_path):
    cfg, client = env
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=2)
    window = Window(start, start + dt.timedelta(minutes=30))
    inbox = tmp_path / "inbox"
    write_csv_export(inbox, window.start, window.end, machine_count=1, machine_offset=OFFSET + 5, bad_rows=5,
                     done_marker=True, name="kcmm_export_test.csv")
    source = open_source("kcmm", cfg, "csv", csv_dir=str(inbox), state_path=str(tmp_path / "state.json"),
                         settle_seconds=0)
    summary = ingest.run(cfg, source, window, overlap=dt.timedelta(0))
    assert summary.points_loaded > 0 and summary.ok
    assert summary.quarantined_at_source == 5
    reasons = [e["reason"] for e in quarantine.read(summary.quarantine_path)]
    assert len(reasons) == 5 and any("UTF-8" in r for r in reasons)
    assert scan.count(client, PREFIX, "kcmm", window) == summary.points_loaded
