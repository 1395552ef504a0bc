"""
### log_trade_perf

Every 5 minutes, runs the **trade_perf** log-analysis job over the **previous data interval** of
the business logs in Elasticsearch (`{prefix}-logs-*`): per-minute volume, success rate, latency
p50/p95/p99, SLA breaches and Apdex per trade.type (and channel; branch per window) of the trading
gateway, and per backend/path over HAProxy and IIS logs; minute rows go to the lake.
"""

from __future__ import annotations

import _builders
from airflow.sdk import CronDataIntervalTimetable, dag

DAG_ID = "log_trade_perf"
JOB = "trade_perf"
CRON = "*/5 * * * *"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC"),
    doc_md=_builders.log_job_doc(__doc__, DAG_ID, JOB, CRON),
    tags=["monetl", "logs", "trade"],
    **_builders.LOG_JOB_DAG_ARGS,
)
def log_trade_perf():
    _builders.log_job_tasks(JOB)


log_trade_perf()
