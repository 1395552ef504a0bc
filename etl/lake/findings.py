"""Log-analysis findings in the lake: findings/job={job}/date={YYYY-MM-DD}/, one partition per job
and day, replaced atomically on every write (re-running a job for a day gives the same partition).
Many days of one job are staged under one run and published together (write_findings_many)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from etl.config import Settings
from etl.lake import layout, publish
from etl.lake.storage import Storage, open_storage


def write_findings(settings: Settings, job: str, day: dt.date | str, table: pa.Table, *,
                   storage: Storage | None = None) -> str:
    """Publish `table` as the findings of `job` for `day`; returns the partition's location."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    storage = storage or open_storage(settings)
    run_id = publish.new_run_id("findings")
    target = layout.findings_partition(job, day)
    staging = layout.staging_path(run_id, target)
    try:
        with publish.scratch_dir(settings) as scratch:
            publish.stage_partition(storage, staging, table, {
                "dataset": layout.FINDINGS, "partition": {"job": job, "date": f"{day:%Y-%m-%d}"},
                "run_id": run_id, "schema_name": "logs/findings_template",
                "schema_version": 1}, Path(scratch), table.column_names)
        publish.publish(storage, staging, target, run_id)
    finally:
        publish.discard(storage, run_id)
    return f"{storage.url}/{target}"


def write_findings_many(settings: Settings, job: str, tables: dict[dt.date, pa.Table], *,
                        storage: Storage | None = None) -> list[str]:
    """Publish the findings of `job` for many days in one step: all partitions staged under one
    run (one scratch folder, one storage client), then moved into place one after another with
    nothing else in between; each partition is still replaced atomically. Returns the locations."""
    if not tables:
        return []
    storage = storage or open_storage(settings)
    run_id = publish.new_run_id("findings")
    staged = []
    try:
        with publish.scratch_dir(settings) as scratch:
            for day, table in sorted(tables.items()):
                target = layout.findings_partition(job, day)
                staging = layout.staging_path(run_id, target)
                publish.stage_partition(storage, staging, table, {
                    "dataset": layout.FINDINGS, "partition": {"job": job, "date": f"{day:%Y-%m-%d}"},
                    "run_id": run_id, "schema_name": "logs/findings_template",
                    "schema_version": 1}, Path(scratch), table.column_names)
                staged.append((staging, target))
        for staging, target in staged:
            publish.publish(storage, staging, target, run_id)
    finally:
        publish.discard(storage, run_id)
    return [f"{storage.url}/{target}" for _, target in staged]
