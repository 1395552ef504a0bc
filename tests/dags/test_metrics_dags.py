"""zabbix_metrics / kcmm_metrics: schedule shape, and one real 5-minute interval of zabbix_metrics run
end to end with dag.test against the real Zabbix and Elasticsearch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.mark.parametrize("dag_id", ["zabbix_metrics", "kcmm_metrics"])
def test_schedule_has_real_intervals_and_bounded_catchup(dagbag, dag_id):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags[dag_id]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is True and 1 <= dag.max_active_runs <= 8
    assert dag.default_args["retries"] >= 1 and dag.default_args["retry_exponential_backoff"]
    assert [t.task_id for t in dag.tasks] == ["ingest"]
    assert "airflow backfill create --dag-id " + dag_id in dag.doc_md


@pytest.mark.integration
@pytest.mark.slow
def test_zabbix_metrics_runs_one_interval_end_to_end(dagbag, airflow_db, settings, zabbix_service,
                                                     elasticsearch_service, monkeypatch, tmp_path):
    from etl.search import scan
    from etl.search.client import es_client
    from etl.seed import delete_hosts, ensure_host, ensure_item, insert_history, writer_connection, zabbix_api
    from etl.window import Window

    prefix = "monetltest-ingest-dag"
    monkeypatch.setenv("MONETL_ES_INDEX_PREFIX", prefix)
    monkeypatch.setenv("MONETL_QUARANTINE_DIR", str(tmp_path))
    client = es_client(settings)
    client.indices.delete(index=f"{prefix}-points-*", ignore_unavailable=True, allow_no_indices=True)
    api = zabbix_api(settings)
    host = f"monetltest-dag-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest"])
    itemid = int(ensure_item(api, hostid, "dag.float", 0))
    logical = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    try:
        # One value a minute from 20 minutes before to 20 minutes after the logical date.
        clocks = [int(logical.timestamp()) + 60 * i for i in range(-20, 20)]
        with writer_connection(settings) as conn:
            insert_history(conn, 0, [(itemid, c, 0, float(c)) for c in clocks])
        run = dagbag.dags["zabbix_metrics"].test(logical_date=logical)
        assert run.state == "success"
        interval = Window(run.data_interval_start, run.data_interval_end)
        assert interval.duration == dt.timedelta(minutes=5)
        es = es_client(dataclasses.replace(settings, es_index_prefix=prefix))
        # the scheduled task leaves the refresh to Elasticsearch (etl.ingest.run refresh=False)
        es.indices.refresh(index=f"{prefix}-points-*")
        docs = scan.documents(es, prefix, "zabbix", interval.widened(before=dt.timedelta(minutes=10)), hosts=[host])
        # The interval and its 10-minute overlap: 15 values, each once.
        expected = [c for c in clocks if interval.start_s - 600 <= c < interval.end_s]
        assert sorted(d["clock"] for d in docs) == expected and len(expected) == 15
        assert {d["run_id"] for d in docs} == {f"zabbix:{interval.start:%Y-%m-%dT%H:%M:%SZ}/"
                                               f"{interval.end:%Y-%m-%dT%H:%M:%SZ}"}
    finally:
        delete_hosts(api, settings, [host])
        api.logout()
        client.indices.delete(index=f"{prefix}-points-*", ignore_unavailable=True, allow_no_indices=True)
