"""
### kcmm_metrics

Every 5 minutes, loads the KCMM samples of the **previous 5-minute data interval** into
Elasticsearch (`{prefix}-points-kcmm-YYYY.MM.DD`) via `etl.ingest.run`: extract (KCMM database),
validate (schemas/expectations/points.json; bad points to the quarantine), bulk load with
deterministic ids. Each run re-reads the 10 minutes before its interval, so late values are
picked up (KCMM exports can lag); re-runs overwrite, never double.
"""

from __future__ import annotations

import _builders
from airflow.sdk import CronDataIntervalTimetable, dag

DAG_ID = "kcmm_metrics"
SOURCE = "kcmm"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(_builders.ingest_cron(), timezone="UTC"),
    doc_md=_builders.metrics_doc(__doc__, DAG_ID, SOURCE, upstream="KCMM database"),
    tags=["monetl", "ingest", "kcmm"],
    **_builders.METRICS_DAG_ARGS,
)
def kcmm_metrics():
    _builders.metrics_tasks(SOURCE)


kcmm_metrics()
