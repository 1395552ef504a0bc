"""KCMM CSV two-phase commit against the real Elasticsearch: a file (or one host's rows in it) counts
as consumed only after every bulk request holding its rows was acknowledged. The oracle is the CSV
itself (its data lines) and a direct Elasticsearch count, never monetl's own summary."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from etl import ingest
from etl.errors import StoreError
from etl.search.client import es_client
from etl.sources import open_source
from etl.sources.kcmm_sample import machines, write_csv_export
from etl.window import Window

pytestmark = pytest.mark.integration

PREFIX = "monetltest-csv-commit"
UTC = dt.timezone.utc
OFFSET = 80  # desktops 1080.. are this module's own
REPO = Path(__file__).resolve().parents[2]


def csv_rows_per_host(folder: Path) -> Counter:
    """Independent oracle: data lines of every export, by machine_name."""
    per_host: Counter = Counter()
    for path in sorted(folder.glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for row in list(csv.reader(fh))[1:]:
                if row:
                    per_host[row[0]] += 1
    return per_host


def es_count(client, host: str | None = None) -> int:
    client.indices.refresh(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    query = {"term": {"host": host}} if host else {"match_all": {}}
    return int(client.count(index=f"{PREFIX}-points-*", query=query, ignore_unavailable=True,
                            allow_no_indices=True)["count"])


@pytest.fixture
def env(settings, elasticsearch_service, tmp_path):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX, quarantine_dir=str(tmp_path / "quarantine"),
                              kcmm_csv_dir=str(tmp_path / "inbox"))
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    yield cfg, client, tmp_path
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def _source(cfg, tmp_path, hosts=None):
    return open_source("kcmm", cfg, "csv", csv_dir=cfg.kcmm_csv_dir, state_path=str(tmp_path / "state.json"),
                       settle_seconds=0, **({"hosts": hosts} if hosts else {}))


def test_an_elasticsearch_error_after_extraction_leaves_the_rows_to_the_retry(env):
    cfg, client, tmp_path = env
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=3)
    window = Window(start, start + dt.timedelta(hours=1))
    write_csv_export(cfg.kcmm_csv_dir, window.start, window.end, machine_count=2, machine_offset=OFFSET,
                     done_marker=True)
    expected = sum(csv_rows_per_host(Path(cfg.kcmm_csv_dir)).values())
    assert expected > 1000

    def fail_after_first_request(done: int) -> None:
        # Give the extraction thread time to finish reading (the old code saved the state then),
        # then fail the way a node going away mid-load does.
        time.sleep(0.5)
        raise StoreError(f"injected: Elasticsearch went away after {done} documents")

    with _source(cfg, tmp_path) as source, pytest.raises(StoreError, match="injected"):
        ingest.run(cfg, source, window, overlap=dt.timedelta(0), on_chunk=fail_after_first_request,
                   chunk_docs=200)
    assert 0 < es_count(client) < expected
    with _source(cfg, tmp_path) as source:
        retry = ingest.run(cfg, source, window, overlap=dt.timedelta(0))
    assert retry.ok and retry.points_read == expected
    assert es_count(client) == expected
    with _source(cfg, tmp_path) as source:  # committed now: a third run reads nothing
        assert ingest.run(cfg, source, window, overlap=dt.timedelta(0)).points_read == 0


def test_a_host_run_leaves_the_other_machines_rows_for_the_next_run(env):
    cfg, client, tmp_path = env
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=3)
    window = Window(start, start + dt.timedelta(minutes=30))
    write_csv_export(cfg.kcmm_csv_dir, window.start, window.end, machine_count=2, machine_offset=OFFSET + 2,
                     done_marker=True)
    per_host = csv_rows_per_host(Path(cfg.kcmm_csv_dir))
    mine, other = [m.machine_name for m in machines(OFFSET + 4)[OFFSET + 2:]]
    assert per_host[mine] > 100 and per_host[other] > 100
    with _source(cfg, tmp_path, hosts=[mine]) as source:
        ingest.run(cfg, source, window, overlap=dt.timedelta(0))
    assert es_count(client, mine) == per_host[mine] and es_count(client, other) == 0
    with _source(cfg, tmp_path) as source:
        later = ingest.run(cfg, source, window, overlap=dt.timedelta(0))
    assert later.points_read == per_host[other]  # only what the --host run left
    assert es_count(client, other) == per_host[other] and es_count(client) == sum(per_host.values())


@pytest.mark.slow
def test_sigkill_of_a_csv_ingest_mid_load_then_rerun_gives_exact_counts(env):
    cfg, client, tmp_path = env
    end = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    window = Window(end - dt.timedelta(hours=12), end)
    write_csv_export(cfg.kcmm_csv_dir, window.start, window.end, machine_count=8, machine_offset=OFFSET + 4,
                     done_marker=True)
    expected = sum(csv_rows_per_host(Path(cfg.kcmm_csv_dir)).values())
    assert expected > 40_000
    env_vars = {**os.environ, "PYTHONPATH": str(REPO), "MONETL_HOME": str(tmp_path / "home"),
                "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_KCMM_CSV_DIR": cfg.kcmm_csv_dir,
                "MONETL_QUARANTINE_DIR": cfg.quarantine_dir, "MONETL_ES_URL": cfg.es_url}
    command = [sys.executable, "-m", "etl", "ingest", "kcmm", "--mode", "csv", "--overlap", "0s", "--no-progress",
               "--start", window.start.strftime("%Y-%m-%dT%H:%MZ"), "--end", window.end.strftime("%Y-%m-%dT%H:%MZ")]
    proc = subprocess.Popen(command, env=env_vars, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while es_count(client) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    partial = es_count(client)
    assert 0 < partial < expected  # killed mid-load
    rerun = subprocess.run(command, env=env_vars, cwd=REPO, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert es_count(client) == expected
    again = subprocess.run(command, env=env_vars, cwd=REPO, capture_output=True, timeout=300)
    assert again.returncode == 0 and es_count(client) == expected
