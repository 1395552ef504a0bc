"""`monetl extracts build` killed with SIGKILL mid-build, then re-run: every .hyper file holds
exactly what an uninterrupted build writes (each table compared row by row), and the capacity fact
matches DuckDB over the lake's Parquet (independent of monetl)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

import extracts_lake
from etl.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIRST = dt.date(2026, 11, 23)
TZ = "Asia/Shanghai"


def _env(home: Path, extracts: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "MONETL_HOME": str(home), "MONETL_LAKE_URL": f"file://{home / 'lake'}",
            "MONETL_EXTRACTS_DIR": str(extracts), "MONETL_REPORT_TZ": TZ, "MONETL_EXTRACTS_HDFS_URL": "",
            "MONETL_TABLEAU_SERVER_URL": ""}


BUILD = [sys.executable, "-m", "etl", "extracts", "build", "--no-copy"]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _tables(path: Path) -> dict[str, list[tuple]]:
    from tableauhyperapi import Connection, CreateMode

    from etl.extracts.hyper_store import hyper_process, qualified

    with hyper_process() as process, Connection(process.endpoint, str(path), CreateMode.NONE) as conn:
        names = [str(t.name.unescaped) for t in conn.catalog.get_table_names("Extract")]
        return {n: sorted((tuple(r) for r in conn.execute_list_query(f"SELECT * FROM {qualified(n)}")), key=repr)
                for n in names}


def test_sigkill_mid_build_then_rerun_gives_the_uninterrupted_result(tmp_path):
    home = tmp_path / "home"
    extracts_lake.standard_lake(Settings(home=home, lake_url=f"file://{home / 'lake'}", report_tz=TZ), FIRST)
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    done = subprocess.run(BUILD, env=_env(home, reference), cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    expected = {p.name: _tables(p) for p in sorted(reference.glob("*.hyper"))}
    assert len(expected) >= 5

    proc = subprocess.Popen(BUILD, env=_env(home, interrupted), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    helpers: set[int] = set()
    deadline = time.monotonic() + 300
    # Kill once the first extract is being written (its file or a temporary copy exists), before the last.
    while proc.poll() is None and time.monotonic() < deadline:
        helpers.update(_children(proc.pid))
        written = [p for p in interrupted.glob("*")] if interrupted.exists() else []
        if written:
            break
        time.sleep(0.05)
    helpers.update(_children(proc.pid))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    for pid in helpers:  # a hyperd the killed build had started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert len(list(interrupted.glob("*.hyper"))) < len(expected), "killed too late: the build had finished"

    rerun = subprocess.run(BUILD, env=_env(home, interrupted), cwd=REPO, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    got = {p.name: _tables(p) for p in sorted(interrupted.glob("*.hyper"))}
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name

    # Independent: one capacity row per (host, item, report day) with samples in the 5-minute rollups.
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    (groups,) = con.execute(f"""
        SELECT count(*) FROM (SELECT DISTINCT host, itemid, CAST(timezone('{TZ}', to_timestamp(bucket)) AS DATE)
        FROM read_parquet('{home / 'lake'}/rollup_5m/source=zabbix/date=*/*.parquet')
        WHERE key IN ('system.cpu.util', 'vm.memory.utilization', 'vfs.fs.size[/,pfree]', 'vfs.fs.size[/data,pfree]',
                      'net.if.in[eth0]', 'net.if.out[eth0]'))""").fetchone()
    assert len(got["capacity.hyper"]["fact_capacity_daily"]) == groups > 0
