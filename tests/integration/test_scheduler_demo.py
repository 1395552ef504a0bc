"""The scheduler demo stage against the real local Airflow: the scheduler itself runs zabbix_metrics
for a real 5-minute data interval within the last few minutes, and the DAG is paused again after."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from etl import services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def airflow_was_running(settings):
    # Airflow costs a core while running: one this test started is stopped afterwards (one already
    # running, e.g. for the demo, is left alone), as in test_service_airflow.
    was_running = services.get("airflow", settings).healthy()
    yield was_running
    if not was_running:
        services.get("airflow", settings).stop()


def test_scheduler_runs_zabbix_metrics_and_pauses_it_again(settings, zabbix_service, elasticsearch_service,
                                                           airflow_was_running, monkeypatch):
    from etl.scheduler_demo import DAG_ID, AirflowApi, _xcom_summary, run_demo

    # run_demo sets MONETL_DAGS_START for the Airflow it spawns; monkeypatch restores it after.
    monkeypatch.delenv("MONETL_DAGS_START", raising=False)
    began = dt.datetime.now(UTC)
    lines = run_demo(settings)
    print("\n".join(lines))

    service = services.get("airflow", settings)
    api = AirflowApi(service.url, "admin", json.loads(service.password_file.read_text())["admin"])
    run_id = re.search(rf"{DAG_ID} run (\S+): success", "\n".join(lines)).group(1)
    run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    assert run["state"] == "success" and run["run_type"] == "scheduled"
    # Run by the scheduler during the stage (a new interval, or the newest one re-run), not an old result.
    assert dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")) >= began
    start = dt.datetime.fromisoformat(run["data_interval_start"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(run["data_interval_end"].replace("Z", "+00:00"))
    # A real cron interval (not the empty one a cron preset gives), recent, and already over.
    assert end - start == dt.timedelta(minutes=5)
    assert start.minute % 5 == 0 and start.second == 0
    assert began - dt.timedelta(minutes=20) <= start and end <= dt.datetime.now(UTC)
    # The scheduler's worker really ingested it: the task's XCom is the ingest summary of that window.
    ti = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest")
    assert ti["state"] == "success"
    summary = _xcom_summary(api, run_id)
    assert summary["ok"] is True and summary["source"] == "zabbix"
    assert summary["window"] == f"[{start.isoformat()}, {end.isoformat()})"
    # Overlap points settled by counts (etl.overlap_check) are stored and counted loaded, not read.
    assert summary["points_loaded"] == (summary["points_read"] - summary["points_quarantined"]
                                        + summary["overlap_settled"])
    assert summary["already_stored"] >= summary["overlap_settled"]

    assert api.get(f"/api/v2/dags/{DAG_ID}")["is_paused"] is True
