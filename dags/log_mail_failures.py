"""
### log_mail_failures

Every hour, runs the **mail_failures** log-analysis job over the **previous data interval** of the
business logs in Elasticsearch (`{prefix}-logs-*`): delivery outcomes per recipient domain and
sender, DSN classes, top failure reasons, queue-delay p50/p95, a failure spike against the mean +
3 sigma of the previous 24 hours, and a pflogsumm-like summary in the task log.
All numbers are Elasticsearch aggregations (`etl.logs.jobs.mail_failures`); thresholds are data in
`schemas/logs/rules.json`.

* Outputs: findings upserted into `{prefix}-findings` with `_id` = fingerprint (job, rule,
  source, target, UTC day), so re-runs and retries never duplicate; the day's lake partition
  `{lake}/findings/job=mail_failures/date=YYYY-MM-DD/` is republished with this window's rows replaced.
* `notify` sends high/critical findings not sent before (per channel: SMTP, webhook, WeChat Work
  robot; settings `MONETL_NOTIFY_*`); a failed send retries only that task.
* Schedule: `CronDataIntervalTimetable("0 * * * *")`, UTC. `catchup=True` from the start date so
  missed intervals run after an outage, one at a time (`max_active_runs=1`: runs of one job
  rewrite the same day partition).
* Past windows: `airflow backfill create --dag-id log_mail_failures --from-date ... --to-date ...`
  (unpaused DAG), or without a scheduler `monetl logs run mail_failures --start ... --end ... [--notify]`.

Owner: monitoring-ops. XCom: counts and fingerprints, never findings or documents.
"""

from __future__ import annotations

import datetime as dt

import _monetl
from airflow.sdk import CronDataIntervalTimetable, dag, task

JOB = "mail_failures"


@dag(
    dag_id="log_mail_failures",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=1,
    default_args=_monetl.DEFAULT_ARGS,
    dagrun_timeout=dt.timedelta(hours=1),
    doc_md=__doc__,
    tags=["monetl", "logs", "mail"],
)
def log_mail_failures():
    @task(execution_timeout=dt.timedelta(minutes=20))
    def analyse(**context) -> dict:
        from etl.logs.jobs import run_job

        settings = _monetl.settings()
        result = run_job(settings, JOB, _monetl.window(context))
        for line in result.summary:
            print(line)
        return result.xcom_summary(settings.notify_min_severity)

    @task(execution_timeout=dt.timedelta(minutes=5))
    def notify(summary: dict) -> dict:
        from etl.notify import notify_stored

        return notify_stored(_monetl.settings(), summary["notify"])

    notify(analyse())


log_mail_failures()
