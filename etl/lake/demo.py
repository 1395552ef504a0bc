"""Demo stage: compact the oldest seeded day into the local lake."""

from __future__ import annotations

import datetime as dt

from etl.config import Settings


def run_demo(settings: Settings) -> list[str]:
    from etl.lake.compact import compact_day, indexed_days
    from etl.search.client import es_client

    es = es_client(settings)
    today = dt.datetime.now(dt.timezone.utc).date()
    days = [(s, d) for s, d in indexed_days(settings, es) if d < today]
    if not days:
        return [f"no finished day in {settings.es_index_prefix}-points-* indices yet: nothing to compact"]
    oldest = min(d for _, d in days)
    cutoff = today - dt.timedelta(days=settings.short_term_days)
    delete = oldest < cutoff
    lines = []
    for source, day in days:
        if day != oldest:
            continue
        report = compact_day(settings, source, day, delete=delete, es=es)
        lines += report.lines()
    if not delete:
        lines.append(f"{oldest} is younger than the {settings.short_term_days}-day retention: "
                     f"compacted with the index kept (delete=False)")
    return lines
