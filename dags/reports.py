"""reports: after the lake changes, rebuild the Tableau extracts for the affected report days, then
the HTML summary, then the optional HDFS copy / Tableau Server publish."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

from _builders import NO_CATCHUP_DAG_ARGS
from _monetl import settings

# Updated by lake_compaction whenever it published at least one day.
LAKE_POINTS = Asset("monetl://lake/points")

DOC = """
### reports
Runs when the Asset `monetl://lake/points` is updated (by `lake_compaction`). Builds every extract
defined in `schemas/extracts/*.json` (capacity, availability, kcmm, findings) into
`MONETL_EXTRACTS_DIR` as star-schema `.hyper` files, one mapped task per extract, then writes
`summary.html` next to them, then copies to `MONETL_EXTRACTS_HDFS_URL` and publishes to Tableau
Server when those are configured (skipped otherwise).

**Which days.** An asset-triggered run has no data interval, so the days come from:
1. the run conf `{"days": ["YYYY-MM-DD", ...]}` (report days, for a manual rebuild), else
2. the triggering asset events' extra `{"days": [UTC days compacted]}` (or `"day"`, or
   `"window": {"start", "end"}`), else
3. the newest `newest_lake_days` (default 2) UTC days published in the lake.
UTC days are mapped to the report-local days (`MONETL_REPORT_TZ`, Asia/Shanghai) they touch; each
report day is replaced in every fact (its week and month rows are recomputed too), so re-runs never
duplicate. Same work by hand: `monetl extracts build --start D --end D`. Owner: monitoring-ops.
"""


@dag(
    dag_id="reports",
    schedule=[LAKE_POINTS],
    doc_md=DOC,
    tags=["monetl", "reports", "tableau"],
    params={
        "days": Param(None, type=["null", "array"], description="report days YYYY-MM-DD to rebuild"),
        "newest_lake_days": Param(2, type="integer", minimum=0,
                                  description="without days or event extras: newest UTC lake days to use"),
    },
    **NO_CATCHUP_DAG_ARGS,
)
def reports():
    @task(execution_timeout=dt.timedelta(minutes=10))
    def report_days(**context) -> list[str]:
        from etl.extracts.pipeline import report_days_for_run

        events = context.get("triggering_asset_events") or {}
        extras = [dict(event.extra or {}) for asset_events in events.values() for event in asset_events]
        params = context["params"]
        days = report_days_for_run(settings(), extras, params.get("days"), int(params["newest_lake_days"]))
        return [d.isoformat() for d in days]

    @task(execution_timeout=dt.timedelta(minutes=5))
    def extract_names() -> list[str]:
        from etl.extracts.definition import load_all

        return list(load_all())

    @task(max_active_tis_per_dagrun=2, execution_timeout=dt.timedelta(hours=2))
    def build(name: str, days: list[str]) -> list[str]:
        from etl.extracts.build import build as build_extracts
        from etl.extracts.periods import parse_day

        if not days:
            return [f"{name}: no report days to build"]
        return [r.line() for r in build_extracts(settings(), name, [parse_day(d) for d in days])]

    @task(execution_timeout=dt.timedelta(minutes=20))
    def summary(built: list[list[str]]) -> str:
        from etl.extracts.summary import write_summary

        return str(write_summary(settings()))

    @task(execution_timeout=dt.timedelta(hours=1))
    def copies(summary_path: str, names: list[str]) -> list[str]:
        from pathlib import Path

        from etl.extracts.build import extracts_dir
        from etl.extracts.publish import copy_to_hdfs, publish_to_tableau

        s = settings()
        files = [p for p in (extracts_dir(s) / f"{n}.hyper" for n in names) if p.exists()]
        return copy_to_hdfs(s, files + [Path(summary_path)]) + publish_to_tableau(s, files)

    days = report_days()
    names = extract_names()
    built = build.partial(days=days).expand(name=names)
    copies(summary(built), names)


reports()
