"""Elasticsearch restarted mid-ingest, on a PRIVATE node (own port, own MONETL_HOME, the shared
unpacked distribution): a run whose retry budget outlasts the restart finishes by itself; a run
whose budget is shorter fails with one line naming the outage (exit 2), and re-running it gives
the exact count. Oracle: the data lines of the CSV exports and a direct count on the node."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from etl import services
from etl.search.client import es_client
from etl.sources.kcmm_sample import write_csv_export

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("MONETL_TEST_PRIVATE_ES_PORT", "9210"))
PREFIX = "monetltest-esrestart"
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def private_es(settings):
    home = Path(tempfile.mkdtemp(prefix="monetl-private-es-"))
    os.chmod(home, 0o755)
    (home / "opt").symlink_to(settings.opt_dir)  # reuse the unpacked distribution, never re-download
    cfg = dataclasses.replace(settings, home=home, es_port=PORT, es_url=f"http://127.0.0.1:{PORT}",
                              es_index_prefix=PREFIX)
    old_opts = os.environ.get("MONETL_ES_JAVA_OPTS")
    os.environ["MONETL_ES_JAVA_OPTS"] = "-Xms512m -Xmx512m"
    service = services.get("elasticsearch", cfg)
    try:
        service.up()
        yield cfg, service
    finally:
        service.stop()
        if old_opts is None:
            os.environ.pop("MONETL_ES_JAVA_OPTS", None)
        else:
            os.environ["MONETL_ES_JAVA_OPTS"] = old_opts
        subprocess.run(["rm", "-rf", str(home)], check=False)


def _csv_lines(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.csv"):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            total += sum(1 for row in list(csv.reader(fh))[1:] if row)
    return total


def _count(cfg) -> int:
    client = es_client(cfg)
    client.indices.refresh(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    return int(client.count(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)["count"])


def _ingest(cfg, home: Path, inbox: Path, window, retry_seconds: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MONETL_HOME": str(home), "MONETL_ES_URL": cfg.es_url,
           "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_KCMM_CSV_DIR": str(inbox),
           "MONETL_QUARANTINE_DIR": str(home / "quarantine"), "MONETL_ES_RETRY_SECONDS": str(retry_seconds)}
    command = [sys.executable, "-m", "etl", "ingest", "kcmm", "--mode", "csv", "--overlap", "0s", "--no-progress",
               "--start", window[0].strftime("%Y-%m-%dT%H:%MZ"), "--end", window[1].strftime("%Y-%m-%dT%H:%MZ")]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _restart_when_loading(cfg, service, proc, down_seconds: float) -> None:
    """Once documents arrive, stop the node, keep it down a while, start it again."""
    deadline = time.monotonic() + 120
    while _count(cfg) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the ingest ended before the restart could hit it"
    service.stop()
    time.sleep(down_seconds)
    service.up()


def _case(cfg, service, tmp_path, name: str, offset: int, retry_seconds: int, down_seconds: float):
    home, inbox = tmp_path / name, tmp_path / name / "inbox"
    end = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    window = (end - dt.timedelta(hours=12), end)
    write_csv_export(inbox, window[0], window[1], machine_count=8, machine_offset=offset, done_marker=True)
    expected = _csv_lines(inbox)
    before = _count(cfg)
    proc = _ingest(cfg, home, inbox, window, retry_seconds)
    restarter = threading.Thread(target=_restart_when_loading, args=(cfg, service, proc, down_seconds))
    restarter.start()
    out, err = proc.communicate(timeout=600)
    restarter.join()
    return proc.returncode, err.decode(), expected, before, (home, inbox, window)


def test_a_restart_within_the_retry_budget_is_ridden_out(private_es, tmp_path):
    cfg, service = private_es
    rc, err, expected, before, _ = _case(cfg, service, tmp_path, "ride", 100, retry_seconds=600, down_seconds=3)
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    assert _count(cfg) - before == expected


def test_a_restart_longer_than_the_budget_fails_in_one_line_and_the_rerun_is_exact(private_es, tmp_path):
    cfg, service = private_es
    rc, err, expected, before, (home, inbox, window) = _case(cfg, service, tmp_path, "fail", 110, retry_seconds=3,
                                                            down_seconds=10)
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("monetl: error:")]
    assert len(errors) == 1 and f"Elasticsearch unreachable at http://127.0.0.1:{PORT}" in errors[0], err[-3000:]
    assert _count(cfg) - before < expected
    rerun = _ingest(cfg, home, inbox, window, retry_seconds=120)
    _, rerun_err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, rerun_err.decode()[-3000:]
    assert _count(cfg) - before == expected
