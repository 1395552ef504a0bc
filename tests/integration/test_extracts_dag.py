"""The reports DAG runs in process with dag.test() over a real local lake: once for report days
given in the run conf, once as if triggered without event extras (newest lake days are used)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import extracts_lake
from etl.config import Settings
from etl.extracts.hyper_store import hyper_process, qualified, read_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "reports.py"
FIRST = dt.date(2026, 11, 23)


def daily_dates(path) -> list[dt.date]:
    with hyper_process() as process:
        rows = read_query(process, path, f"SELECT DISTINCT date_key FROM {qualified('fact_capacity_daily')} ORDER BY 1")
    return [dt.date(r[0].year, r[0].month, r[0].day) for r in rows]


def test_reports_dag_builds_the_chosen_days(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    monkeypatch.setenv("MONETL_REPORT_TZ", "Asia/Shanghai")
    for name in ("LAKE_URL", "EXTRACTS_DIR", "EXTRACTS_HDFS_URL", "TABLEAU_SERVER_URL"):
        monkeypatch.delenv(f"MONETL_{name}", raising=False)
    cfg = Settings()
    extracts_lake.standard_lake(cfg, FIRST)
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("reports")
    capacity = Path(cfg.extracts_dir) / "capacity.hyper"

    run = dag.test(logical_date=dt.datetime(2026, 11, 25, 3, tzinfo=dt.timezone.utc),
                   run_conf={"days": ["2026-11-24"]})
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["summary"] == "success" and states["copies"] == "success"
    assert daily_dates(capacity) == [dt.date(2026, 11, 24)]
    assert (Path(cfg.extracts_dir) / "summary.html").exists()
    assert {p.name for p in Path(cfg.extracts_dir).glob("*.hyper")} == {
        "capacity.hyper", "availability.hyper", "kcmm.hyper", "findings.hyper", "trade_perf.hyper"}

    # No conf and no event extra: the newest 2 UTC lake days -> the 3 Shanghai days they touch.
    # (A fresh DAG object: dag.test() leaves the previous run_conf in the params of the one it ran.)
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("reports")
    run = dag.test(logical_date=dt.datetime(2026, 11, 26, 3, tzinfo=dt.timezone.utc))
    assert run.state == DagRunState.SUCCESS
    assert daily_dates(capacity) == [FIRST, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)]
