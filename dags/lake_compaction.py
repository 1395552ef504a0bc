"""lake_compaction: daily, compacts every points day older than the short-term retention into the
Parquet lake, verifies it against Elasticsearch, then deletes the day's index."""

from __future__ import annotations

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
replaced exactly). Same work by hand: `monetl compact --older-than-retention`.
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
    @task
    def due_days(**context) -> list[dict]:
        from etl.lake.compact import days_due

        today = window(context).end.date()
        return [{"source": source, "day": day.isoformat()} for source, day in days_due(settings(), today=today)]

    @task(max_active_tis_per_dagrun=2)
    def compact(day: dict) -> dict:
        from etl.lake.compact import compact_day

        # reconcile: count the day at the source and backfill what is missing before compacting it.
        report = compact_day(settings(), day["source"], day["day"], delete=True, reconcile=True)
        return {**day, "report": "; ".join(report.lines())}

    @task(outlets=[LAKE_POINTS])
    def lake_updated(results: list[dict], **context) -> int:
        # The reports DAG rebuilds exactly these UTC days (read from the asset event's extra).
        compacted = list(results)
        context["outlet_events"][LAKE_POINTS].extra = {"days": sorted({r["day"] for r in compacted})}
        return len(compacted)

    lake_updated(compact.expand(day=due_days()))


lake_compaction()
