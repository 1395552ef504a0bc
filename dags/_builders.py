"""What the DAGs of one family share: their run policy (start, catch-up, concurrency), their tasks
and the operations part of their doc. Wiring only: the work is in etl/.

A DAG file still declares its own DAG with `@dag` (dag_id = file name, schedule, tags, the doc of
what it does) and calls a builder inside it for the tasks. The DAG is constructed in its file, so
its fileloc is that file wherever it is loaded (DagBag, runpy, a worker), not this module.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import task

import _monetl

DAGS_START_DEFAULT = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


def dags_start() -> dt.datetime:
    """Where catch-up begins: `MONETL_DAGS_START` (ISO date or datetime, UTC if no offset), read
    when the DAG file is parsed. A new install sets it to its go-live date, so catch-up never
    replays intervals from before the system existed.

    A malformed value falls back to the default instead of failing the parse: an import error
    would take every DAG of the family off the scheduler, which is worse than a wide catch-up."""
    raw = os.environ.get("MONETL_DAGS_START", "").strip()
    if not raw:
        return DAGS_START_DEFAULT
    try:
        start = dt.datetime.fromisoformat(raw)
    except ValueError:
        print(f"monetl: MONETL_DAGS_START={raw!r} is not an ISO date or datetime; "
              f"using {DAGS_START_DEFAULT.isoformat()}")
        return DAGS_START_DEFAULT
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    return start.astimezone(dt.timezone.utc)


_START = dags_start()

# Interval jobs: every window must run, so catch-up replays missed ones after an outage.
LOG_JOB_DAG_ARGS = {
    "start_date": _START,
    "catchup": True,
    # One at a time: runs of one job rewrite the same day partition.
    "max_active_runs": 1,
    "default_args": _monetl.DEFAULT_ARGS,
    "dagrun_timeout": dt.timedelta(hours=1),
}
METRICS_DAG_ARGS = {
    **LOG_JOB_DAG_ARGS,
    # Bounded so a catch-up does not stampede the source and Elasticsearch.
    "max_active_runs": 4,
}
# Each run does all the work due when it runs (lake_compaction: every day past retention; reports:
# the days the lake changed), so a missed run needs no replay; one run at a time.
NO_CATCHUP_DAG_ARGS = {
    "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": _monetl.DEFAULT_ARGS,
}

INGEST_CRON_DEFAULT = "*/5 * * * *"


def ingest_cron() -> str:
    """The metrics DAGs' cron: `MONETL_INGEST_CRON`, read when the DAG file is parsed.

    A default keeps the file parseable when the variable is absent."""
    return os.environ.get("MONETL_INGEST_CRON", INGEST_CRON_DEFAULT)


def log_job_tasks(job: str) -> None:
    """analyse -> notify for the log-analysis `job`, added to the DAG being defined."""

    # max_active_tis_per_dag: the one-at-a-time bound also holds for backfill runs, which Airflow
    # counts against the backfill's own --max-active-runs (default 10), not the DAG's.
    @task(execution_timeout=dt.timedelta(minutes=20), max_active_tis_per_dag=LOG_JOB_DAG_ARGS["max_active_runs"])
    def analyse(**context) -> dict:
        from etl.logs.jobs import run_job

        settings = _monetl.settings()
        result = run_job(settings, job, _monetl.window(context))
        for line in result.summary:
            print(line)
        return result.xcom_summary(settings.notify_min_severity)

    @task(execution_timeout=dt.timedelta(minutes=5))
    def notify(summary: dict) -> dict:
        from etl.notify import notify_stored

        # job: also earlier findings whose notify failed through all its retries
        return notify_stored(_monetl.settings(), summary["notify"], job=summary["job"])

    notify(analyse())


def metrics_tasks(source: str) -> None:
    """The one ingest task of a metrics DAG for `source`, added to the DAG being defined."""

    # ≤ 4 ingests at once for scheduled, catch-up and backfill runs alike (a backfill's runs are
    # bounded by its own --max-active-runs, default 10, not by the DAG's max_active_runs).
    @task(execution_timeout=dt.timedelta(minutes=30), max_active_tis_per_dag=METRICS_DAG_ARGS["max_active_runs"])
    def ingest(**context) -> dict:
        from etl import ingest as pipeline
        from etl.errors import StoreError

        # no refresh at the end: nothing in the DAG reads behind it (etl.ingest.run)
        summary = pipeline.run(_monetl.settings(), source, _monetl.window(context), progress="plain", refresh=False)
        if not summary.ok:  # fail the try so Airflow retries; ids make the retry converge
            raise StoreError(summary.line())
        return summary.to_dict()

    ingest()


_LOG_JOB_OPERATIONS = """\
All numbers are Elasticsearch aggregations (`etl.logs.jobs.{job}`); thresholds are data in
`schemas/logs/rules.json`.

* Outputs: findings upserted into `{{prefix}}-findings` with `_id` = fingerprint (job, rule,
  source, target, UTC day of the first event), so re-runs and retries never duplicate; rules with
  a time span look back that far; the run waits `MONETL_LOG_SETTLE_S` (default 120 s) after the
  interval's end so late-indexed events are in; the day's lake partition
  `{{lake}}/findings/job={job}/date=YYYY-MM-DD/` is republished with this window's rows replaced.
* `notify` sends high/critical findings not sent before (per channel: SMTP, webhook, WeChat Work
  robot; settings `MONETL_NOTIFY_*`); a failed send retries only that task.
* Schedule: `CronDataIntervalTimetable("{cron}")`, UTC. `catchup=True` from the start date
  (`MONETL_DAGS_START`, the go-live date; default {start_default}) so missed intervals run after
  an outage, one at a time (`max_active_runs=1`: runs of one job rewrite the same day partition).
* Past windows: `airflow backfill create --dag-id {dag_id} --from-date A --to-date B
  --max-active-runs 1 --reprocess-behavior failed` (dates inclusive: B is the start of the last
  interval; unpaused DAG), or without a scheduler `monetl logs run {job} --start ... --end ... [--notify]`.

Owner: {owner}. XCom: counts and fingerprints, never findings or documents.
"""

_METRICS_OPERATIONS = """\

* Schedule: `CronDataIntervalTimetable`, cron from `MONETL_INGEST_CRON` (default `{cron_default}`), UTC.
* `catchup=True`: after a scheduler outage the missed intervals run, at most {max_active_runs} at a time
  (`max_active_runs`) so a catch-up does not stampede the {upstream} and Elasticsearch. Catch-up
  never reaches before the start date: `MONETL_DAGS_START` (the go-live date, ISO, UTC; default
  {start_default}), read at parse time.
* Retries with exponential backoff (`_monetl.DEFAULT_ARGS`); a failed or killed run is repaired
  by running it again.
* Past windows: `airflow backfill create --dag-id {dag_id} --from-date 2026-11-24T00:00:00
  --to-date 2026-11-24T23:55:00 --max-active-runs {max_active_runs} --reprocess-behavior failed`
  (both dates are inclusive logical dates = interval starts; `failed` re-runs failed runs, the
  default `none` skips every date that has a run; the DAG must be unpaused: backfill runs stay
  queued on a paused DAG), or without a scheduler `monetl ingest {source} --start ... --end ...`;
  `monetl gaps` / `monetl backfill` find and fill missing hours.

Owner: {owner}. XCom: the run summary (counts, quarantine path), never data.
"""


def log_job_doc(what: str, dag_id: str, job: str, cron: str) -> str:
    """doc_md of a log-job DAG: `what` (the file's docstring: what the job finds) + operations."""
    return what + _LOG_JOB_OPERATIONS.format(job=job, dag_id=dag_id, cron=cron,
                                             start_default=DAGS_START_DEFAULT.date().isoformat(),
                                             owner=_monetl.DEFAULT_ARGS["owner"])


def metrics_doc(what: str, dag_id: str, source: str, upstream: str) -> str:
    """doc_md of a metrics DAG: `what` (the file's docstring: what it loads from where) + operations;
    `upstream` names what a catch-up must not stampede (e.g. "Zabbix API")."""
    return what + _METRICS_OPERATIONS.format(
        dag_id=dag_id, source=source, upstream=upstream, cron_default=INGEST_CRON_DEFAULT,
        start_default=DAGS_START_DEFAULT.date().isoformat(),
        max_active_runs=METRICS_DAG_ARGS["max_active_runs"], owner=_monetl.DEFAULT_ARGS["owner"])
