"""
### log_mail_failures

Every hour, runs the **mail_failures** log-analysis job over the **previous data interval** of the
business logs in Elasticsearch (`{prefix}-logs-*`): delivery outcomes per recipient domain and
sender, DSN classes, top failure reasons, queue-delay p50/p95, a failure spike against the mean +
3 sigma of the previous 24 hours, and a pflogsumm-like summary in the task log.
"""

from __future__ import annotations

import _builders
from airflow.sdk import CronDataIntervalTimetable, dag

DAG_ID = "log_mail_failures"
JOB = "mail_failures"
CRON = "0 * * * *"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC"),
    doc_md=_builders.log_job_doc(__doc__, DAG_ID, JOB, CRON),
    tags=["monetl", "logs", "mail"],
    **_builders.LOG_JOB_DAG_ARGS,
)
def log_mail_failures():
    _builders.log_job_tasks(JOB)


log_mail_failures()
