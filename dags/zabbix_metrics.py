"""
### zabbix_metrics

Every 5 minutes, loads the Zabbix history of the **previous 5-minute data interval** into
Elasticsearch (`{prefix}-points-zabbix-YYYY.MM.DD`) via `etl.ingest.run`: extract (Zabbix API),
validate (schemas/expectations/points.json; bad points to the quarantine), bulk load with
deterministic ids. Each run re-reads the 10 minutes before its interval, so late values are
picked up; re-runs overwrite, never double.
"""

from __future__ import annotations

import _builders
from airflow.sdk import CronDataIntervalTimetable, dag

DAG_ID = "zabbix_metrics"
SOURCE = "zabbix"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(_builders.ingest_cron(), timezone="UTC"),
    doc_md=_builders.metrics_doc(__doc__, DAG_ID, SOURCE, upstream="Zabbix API"),
    tags=["monetl", "ingest", "zabbix"],
    **_builders.METRICS_DAG_ARGS,
)
def zabbix_metrics():
    _builders.metrics_tasks(SOURCE)


zabbix_metrics()
