"""
### zabbix_metrics

Every 5 minutes, loads the Zabbix history of the **previous 5-minute data interval** into
Elasticsearch (`{prefix}-points-zabbix-YYYY.MM.DD`) via `etl.ingest.run`: extract (Zabbix API),
validate (schemas/expectations/points.json; bad points to the quarantine), bulk load with
deterministic ids. Each run re-reads the 10 minutes before its interval, so late values are
picked up; re-runs overwrite, never double.

* Schedule: `CronDataIntervalTimetable`, cron from `MONETL_INGEST_CRON` (default `*/5 * * * *`), UTC.
* `catchup=True`: after a scheduler outage the missed intervals run, at most 4 at a time
  (`max_active_runs`) so a catch-up does not stampede the Zabbix API and Elasticsearch.
* Retries with exponential backoff (`_monetl.DEFAULT_ARGS`); a failed or killed run is repaired
  by running it again.
* Past windows: `airflow backfill create --dag-id zabbix_metrics --from-date 2026-11-24T00:00:00
  --to-date 2026-11-25T00:00:00` (the DAG must be unpaused: backfill runs stay queued on a
  paused DAG), or without a scheduler `monetl ingest zabbix --start ... --end ...`;
  `monetl gaps` / `monetl backfill` find and fill missing hours.

Owner: monitoring-ops. XCom: the run summary (counts, quarantine path), never data.
"""

from __future__ import annotations

import datetime as dt
import os

import _monetl
from airflow.sdk import CronDataIntervalTimetable, dag, task

SOURCE = "zabbix"
# A default keeps the file parseable when the variable is absent.
CRON = os.environ.get("MONETL_INGEST_CRON", "*/5 * * * *")


@dag(
    dag_id="zabbix_metrics",
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC"),
    start_date=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=4,
    default_args=_monetl.DEFAULT_ARGS,
    dagrun_timeout=dt.timedelta(hours=1),
    doc_md=__doc__,
    tags=["monetl", "ingest", "zabbix"],
)
def zabbix_metrics():
    @task(execution_timeout=dt.timedelta(minutes=30))
    def ingest(**context) -> dict:
        from etl import ingest as pipeline
        from etl.errors import StoreError

        summary = pipeline.run(_monetl.settings(), SOURCE, _monetl.window(context), progress="plain")
        if not summary.ok:  # fail the try so Airflow retries; ids make the retry converge
            raise StoreError(summary.line())
        return summary.to_dict()

    ingest()


zabbix_metrics()
