"""
### log_illegal_access

Every 15 minutes, runs the **illegal_access** log-analysis job over the **previous data interval**
of the business logs in Elasticsearch (`{prefix}-logs-*`): brute force, invalid-user probing,
success after failures (HIGH), logins from outside the allowed networks, privileged logins outside
Asia/Shanghai business hours, web 401/403 floods, admin-console brute force, scanner paths and
Windows password spraying.
"""

from __future__ import annotations

import _builders
from airflow.sdk import CronDataIntervalTimetable, dag

DAG_ID = "log_illegal_access"
JOB = "illegal_access"
CRON = "*/15 * * * *"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC"),
    doc_md=_builders.log_job_doc(__doc__, DAG_ID, JOB, CRON),
    tags=["monetl", "logs", "security"],
    **_builders.LOG_JOB_DAG_ARGS,
)
def log_illegal_access():
    _builders.log_job_tasks(JOB)


log_illegal_access()
