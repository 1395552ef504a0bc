"""lake_compaction: daily, compacts every points day older than the short-term retention into the
Parquet lake, verifies it against Elasticsearch, then deletes the day's index."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from _builders import NO_CATCHUP_DAG_ARGS
from _monetl import settings, window

# Consumed by the reports DAG: updated once per run that compacted at least one day.
LAKE_POINTS = Asset("monetl://lake/points")

DOC = """
### lake_compaction
Every day at 02:00 UTC: finds the daily points indices (`{prefix}-points-{source}-{YYYY.MM.DD}`)
older than `MONETL_SHORT_TERM_DAYS` (counted back from the end of the run's data interval), and
for each (mapped task per source and day) runs `etl.lake.compact.compact_day`: reconciliation with
the source (backfill of what is missing), write block, PIT scan (merged with the lake copy) -> Parquet
partition + 5m/1h rollups, atomic publish, verification against Elasticsearch, then index delete.
A verification failure fails that task and keeps the index; re-running is safe (a day is
replaced exactly). `lake_updated` runs whatever the days' outcome (trigger rule `all_done`) and
names only the days that compacted, so reports are rebuilt for them; `every_day_compacted` fails
the run when any day failed. Same work by hand: `monetl compact --older-than-retention`.
Outlet: Asset `monetl://lake/points`. Owner: monitoring-ops.
"""


@dag(
    dag_id="lake_compaction",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    doc_md=DOC,
    tags=["monetl", "lake", "compaction"],
    **NO_CATCHUP_DAG_ARGS,
)
def lake_compaction():
    @task(execution_timeout=dt.timedelta(minutes=10))
    def due_days(**context) -> list[dict]:
        from etl.lake.compact import days_due

        today = window(context).end.date()
        return [{"source": source, "day": day.isoformat()} for source, day in days_due(settings(), today=today)]

    # A day of 2,000 hosts x 50 items (~144M points) scans, writes and verifies in well under this.
    @task(max_active_tis_per_dagrun=2, execution_timeout=dt.timedelta(hours=4))
    def compact(day: dict) -> dict:
        from etl.lake.compact import compact_day

        # reconcile: count the day at the source and backfill what is missing before compacting it.
        report = compact_day(settings(), day["source"], day["day"], delete=True, reconcile=True)
        return {**day, "report": "; ".join(report.lines())}

    # all_done: one failed day must not keep reports from the days that did compact. Only the
    # successful map indexes have a result, so the event names exactly those days.
    @task(outlets=[LAKE_POINTS], trigger_rule="all_done", execution_timeout=dt.timedelta(minutes=5))
    def lake_updated(results: list[dict], **context) -> int:
        from airflow.sdk.exceptions import AirflowSkipException

        # The reports DAG rebuilds exactly these UTC days (read from the asset event's extra).
        compacted = [r for r in results if r]
        if not compacted:  # no event, so no reports run for nothing
            raise AirflowSkipException("no day was compacted")
        context["outlet_events"][LAKE_POINTS].extra = {"days": sorted({r["day"] for r in compacted})}
        return len(compacted)

    @task(execution_timeout=dt.timedelta(minutes=5))
    def every_day_compacted(results: list[dict]) -> int:
        # Default trigger rule: upstream_failed when a day failed, so the run still shows failed.
        return len(list(results))

    compacted = compact.expand(day=due_days())
    lake_updated(compacted)
    every_day_compacted(compacted)


lake_compaction()
