"""Recovery through Airflow as the README tells it, against Airflow's real metadata DB (no
scheduler): zabbix_metrics runs during an Elasticsearch outage fail with one line naming the
outage; `airflow backfill create` with the default reprocess behaviour would re-run none of them,
`--reprocess-behavior failed` re-runs exactly them; both dates are inclusive (logical date =
interval start), and the backfill carries the README's concurrency bound."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "zabbix_metrics.py"
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connection refused


def test_outage_runs_fail_with_one_line_and_a_failed_backfill_reruns_exactly_them(
        airflow_db, monkeypatch, caplog, capfd):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.backfill import Backfill, BackfillDagRun, ReprocessBehavior, _create_backfill, _do_dry_run
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    port = _dead_port()
    monkeypatch.setenv("MONETL_ES_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MONETL_ES_RETRY_SECONDS", "2")
    monkeypatch.setenv("MONETL_ES_INDEX_PREFIX", "monetltest-recovery")
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("zabbix_metrics")
    for task in dag.tasks:  # the outage outlasts every retry
        task.retries = 0
    failed = [START, START + dt.timedelta(minutes=5)]
    with caplog.at_level(logging.INFO):
        for logical_date in failed:
            run = dag.test(logical_date=logical_date)
            assert run.state == DagRunState.FAILED
    out, err = capfd.readouterr()
    text = caplog.text + out + err  # the task log: Airflow's structlog writes it to stdout here
    outage = f"Elasticsearch unreachable at http://127.0.0.1:{port}: connection refused"
    assert text.count(outage) >= len(failed)
    assert "Retrying request after failure" not in text  # the client's own per-attempt tracebacks
    assert "has failed for" not in text  # nor its node-pool warnings
    ok = dag.test(logical_date=START + dt.timedelta(minutes=10))  # stands for a run that had succeeded
    assert ok.state == DagRunState.FAILED  # (still no Elasticsearch) ...
    with create_session() as session:  # ... so mark it as the success it stands for
        from airflow.models.dagrun import DagRun

        row = session.scalar(select(DagRun).where(DagRun.run_id == ok.run_id))
        row.state = DagRunState.SUCCESS

    last = START + dt.timedelta(minutes=10)
    with create_session() as session:
        # Both dates inclusive: from 00:00 to 00:10 is three intervals, 00:00, 00:05 and 00:10.
        every = list(_do_dry_run(dag_id=dag.dag_id, from_date=START, to_date=last, reverse=False,
                                 reprocess_behavior=ReprocessBehavior.COMPLETED, session=session))
        assert [i.logical_date for i in every] == [START, START + dt.timedelta(minutes=5), last]
        # The default (none) re-runs nothing: every date already has a run.
        assert list(_do_dry_run(dag_id=dag.dag_id, from_date=START, to_date=last, reverse=False,
                                reprocess_behavior=ReprocessBehavior.NONE, session=session)) == []
        again = list(_do_dry_run(dag_id=dag.dag_id, from_date=START, to_date=last, reverse=False,
                                 reprocess_behavior=ReprocessBehavior.FAILED, session=session))
        assert [i.logical_date for i in again] == failed
    backfill = _create_backfill(dag_id=dag.dag_id, from_date=START, to_date=last, max_active_runs=4, reverse=False,
                                dag_run_conf={}, triggering_user_name="test",
                                reprocess_behavior=ReprocessBehavior.FAILED)
    with create_session() as session:
        stored = session.scalar(select(Backfill).where(Backfill.id == backfill.id))
        assert stored.max_active_runs == 4
        rows = session.scalars(select(BackfillDagRun).where(BackfillDagRun.backfill_id == backfill.id)).all()
        created = sorted(r.logical_date for r in rows if r.dag_run_id is not None)
        assert created == failed
