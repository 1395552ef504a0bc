"""Reconciliation of a day before it is compacted: count the day at the source (per bucket, where
the source still has it) against the store, backfill what is missing through the normal ingest
path (`etl.ingest.backfill`), count again, and hand back a record for the partition's manifest.

Verification before the index is deleted then checks the published day against this record: per
bucket the lake must hold at least what the store held after the backfill (capped by the source),
so a value that reached Elasticsearch, or the lake before, cannot silently go missing. Values that
arrive at the source later than the late-value horizon are found by the next reconciliation of
their day (a re-run of the day's compaction reconciles again and merges)."""

from __future__ import annotations

import datetime as dt
import logging

from etl.config import Settings
from etl.window import Window

log = logging.getLogger(__name__)

BUCKET = dt.timedelta(hours=1)


def _buckets(report) -> dict[str, dict[str, int]]:
    out = {}
    for b in report.buckets:
        # Points this store quarantined as bad data are accounted for, not expected in the lake.
        out[str(int(b.start.timestamp()))] = {"source": int(b.source_count), "missing": int(b.missing),
                                              "quarantined": int(getattr(b, "quarantined", 0))}
    return out


def reconcile_day(settings: Settings, source: str, day: dt.date, *, mode: str | None = None,
                  hosts: list[str] | None = None, client=None, bucket: dt.timedelta = BUCKET) -> dict:
    """Backfill `day` of `source` from the source where the store is short; the manifest record."""
    from etl import ingest

    window = Window.day(day)
    before, summaries = ingest.backfill(settings, source, window, bucket, mode=mode, client=client, hosts=hosts)
    after = ingest.gaps(settings, source, window, bucket, mode=mode, client=client, hosts=hosts) if summaries else before
    record = {
        "counted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode or "default",
        "hosts": sorted(hosts) if hosts else None,
        "bucket_seconds": int(bucket.total_seconds()),
        "source_points": sum(b.source_count for b in after.buckets),
        "missing_before": sum(b.missing for b in before.buckets),
        "backfilled": sum(s.points_loaded for s in summaries),
        "missing_after": sum(b.missing for b in after.buckets),
        "quarantined": sum(int(getattr(b, "quarantined", 0)) for b in after.buckets),
        "buckets": _buckets(after),
    }
    log.info("reconciled %s %s: source %d points, %d missing, %d backfilled, %d still missing",
             source, day, record["source_points"], record["missing_before"], record["backfilled"],
             record["missing_after"])
    return record


def quarantined_text(counts: dict) -> str:
    return f"{counts['quarantined']} quarantined, " if counts.get("quarantined") else ""


def shortfalls(record: dict, lake_buckets: dict[int, int]) -> list[str]:
    """Buckets where the lake holds fewer points than the store held after reconciliation
    (source - quarantined - still missing); empty when the day is complete."""
    problems = []
    for start, counts in sorted((record.get("buckets") or {}).items(), key=lambda kv: int(kv[0])):
        expected = counts["source"] - counts.get("quarantined", 0) - counts["missing"]
        have = lake_buckets.get(int(start), 0)
        if have < expected:
            when = dt.datetime.fromtimestamp(int(start), dt.timezone.utc)
            problems.append(f"{when:%Y-%m-%dT%H:%MZ}: lake {have}, source {counts['source']} "
                            f"({quarantined_text(counts)}{counts['missing']} known missing)")
    return problems
