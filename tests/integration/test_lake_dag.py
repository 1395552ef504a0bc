"""The lake_compaction DAG runs one real daily interval end to end with dag.test(): the due day of
a test source is compacted into a temporary lake, verified, its index deleted, and the
monetl://lake/points asset gets an event."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from etl.lake import reader
from etl.lake.storage import LocalStorage
from etl.schema import points_index
from etl.search.client import es_client
from etl.window import Window

from lake_support import lake_settings, same_points, seed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-lakedag"
DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "lake_compaction.py"


def test_one_interval_compacts_the_due_day(settings, elasticsearch_service, airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    lake_root = tmp_path / "lake"
    monkeypatch.setenv("MONETL_ES_INDEX_PREFIX", PREFIX)
    monkeypatch.setenv("MONETL_LAKE_URL", f"file://{lake_root}")
    monkeypatch.setenv("MONETL_SHORT_TERM_DAYS", "7")
    cfg = lake_settings(settings, PREFIX)
    es = es_client(cfg)
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    due, young = dt.date(2026, 9, 1), dt.date(2026, 9, 9)
    points = seed(es, cfg, "zabbix", due, hosts=["h1", "交易主机"], items_per_host=3, points_per_item=10)
    seed(es, cfg, "zabbix", young, hosts=["h1"], items_per_host=1, points_per_item=3)

    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("lake_compaction")
    # Interval [2026-09-10 02:00, 2026-09-11 02:00): days before 2026-09-04 are due.
    run = dag.test(logical_date=dt.datetime(2026, 9, 10, 2, tzinfo=dt.timezone.utc))
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["lake_updated"] == "success" and states["compact"] == "success"

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                 .where(AssetModel.uri == "monetl://lake/points")
                                 .where(AssetEvent.source_run_id == run.run_id)).all()
    assert len(events) == 1
    # reports reads the compacted UTC days from the event's extra
    assert events[0].extra == {"days": [due.isoformat()]}

    storage = LocalStorage(lake_root)
    assert reader.published_days(storage, "zabbix") == {due}
    back = reader.read_points(cfg, "zabbix", Window.day(due), storage=storage)
    assert same_points(back, points)
    assert not es.indices.exists(index=points_index(PREFIX, "zabbix", due))
    assert es.indices.exists(index=points_index(PREFIX, "zabbix", young))
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def test_one_failed_day_still_updates_the_lake_asset_with_the_days_that_compacted(
        settings, elasticsearch_service, airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    prefix = PREFIX + "-fail"
    monkeypatch.setenv("MONETL_ES_INDEX_PREFIX", prefix)
    monkeypatch.setenv("MONETL_LAKE_URL", f"file://{tmp_path / 'lake'}")
    monkeypatch.setenv("MONETL_SHORT_TERM_DAYS", "7")
    cfg = lake_settings(settings, prefix)
    es = es_client(cfg)
    es.indices.delete(index=f"{prefix}-points-*", ignore_unavailable=True, allow_no_indices=True)
    good, bad = dt.date(2026, 9, 1), dt.date(2026, 9, 2)
    seed(es, cfg, "zabbix", good, hosts=["h1"], items_per_host=2, points_per_item=5)
    # A day index whose document is not a point: its compaction fails, the index stays. (The
    # logsdb layout refuses a document without @timestamp, so it has one; clock, host... lack.)
    bad_index = points_index(prefix, "zabbix", bad)
    es.index(index=bad_index, id="x", document={"@timestamp": f"{bad.isoformat()}T00:00:00Z", "source": "zabbix",
                                                "itemid": 1}, refresh=True)

    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("lake_compaction")
    for task in dag.tasks:  # no retry waits inside dag.test
        task.retries = 0
    run = dag.test(logical_date=dt.datetime(2026, 9, 10, 2, tzinfo=dt.timezone.utc))
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    compact_states = sorted(s for (t, _), s in states.items() if t == "compact")
    assert compact_states == ["failed", "success"], states
    assert states[("lake_updated", -1)] == "success"
    assert states[("every_day_compacted", -1)] == "upstream_failed"
    assert run.state == DagRunState.FAILED
    with create_session() as session:
        events = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                 .where(AssetModel.uri == "monetl://lake/points")
                                 .where(AssetEvent.source_run_id == run.run_id)).all()
    assert [e.extra for e in events] == [{"days": [good.isoformat()]}]
    assert es.indices.exists(index=bad_index)
    es.indices.delete(index=f"{prefix}-points-*", ignore_unavailable=True, allow_no_indices=True)
