"""Demo stage: a lost hour found and closed. One hour of Zabbix points is deleted from
Elasticsearch (as a bulk load that never arrived would leave it), then `monetl gaps` compares the
source with Elasticsearch per hour and `monetl backfill` re-ingests exactly the short bucket."""

from __future__ import annotations

import datetime as dt

from etl.config import Settings
from etl.window import Window


def drop_window(es, settings: Settings, source: str, window: Window) -> int:
    """Delete the points of `source` in `window` from Elasticsearch; returns how many (ids from a
    scroll, deleted in bulk: the minimal distribution has no delete-by-query)."""
    from elasticsearch import helpers

    from etl.schema import points_index_pattern

    pattern = points_index_pattern(settings.es_index_prefix, source)
    query = {"bool": {"filter": [{"term": {"source": source}}, {"range": {"@timestamp": {
        "gte": window.start.isoformat(), "lt": window.end.isoformat()}}}]}}
    hits = helpers.scan(es, index=pattern, query={"query": query}, _source=False,
                        size=5000, ignore_unavailable=True)
    actions = ({"_op_type": "delete", "_index": h["_index"], "_id": h["_id"]} for h in hits)
    deleted, _ = helpers.bulk(es, actions, chunk_size=5000, raise_on_error=False, stats_only=True)
    es.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(deleted)


def _gap_line(report) -> str:
    short = [f"{b.start:%H:%MZ} source {b.source_count:,} / Elasticsearch {b.es_count:,} ({b.status})"
             for b in report.gaps]
    return (f"`monetl gaps zabbix --start {report.window.start:%Y-%m-%dT%H:%MZ} --end {report.window.end:%Y-%m-%dT%H:%MZ}`: "
            f"{len(report.gaps)} of {len(report.buckets)} hourly buckets short" + (": " + "; ".join(short) if short else ""))


def run_demo(settings: Settings, now: dt.datetime | None = None) -> list[str]:
    from etl import ingest
    from etl.search.client import es_client

    now = (now or dt.datetime.now(dt.timezone.utc)).replace(minute=0, second=0, microsecond=0)
    # An hour of today when there is one: the lake stage compacts only finished days, so the hour is
    # in Elasticsearch alone (a gap check that also counts the lake would not see it otherwise).
    midnight = now.replace(hour=0)
    start = max(midnight, now - dt.timedelta(hours=3)) if now - midnight >= dt.timedelta(hours=2) \
        else now - dt.timedelta(hours=3)
    lost = Window(start, start + dt.timedelta(hours=1))
    around = Window(lost.start - dt.timedelta(hours=1), lost.end + dt.timedelta(hours=1))
    es = es_client(settings)
    deleted = drop_window(es, settings, "zabbix", lost)
    lines = [f"dropped {deleted:,} Zabbix points of {lost} from Elasticsearch (a lost bulk load)"]
    from etl.seed.fleet import demo_hosts

    fleet = demo_hosts()
    before = ingest.gaps(settings, "zabbix", around, mode="db", client=es, hosts=fleet)
    lines.append(_gap_line(before))
    report, summaries = ingest.backfill(settings, "zabbix", around, mode="db", client=es, hosts=fleet)
    lines += [f"`monetl backfill zabbix ...`: {s.line()}" for s in summaries] or ["backfill: nothing to do"]
    after = ingest.gaps(settings, "zabbix", around, mode="db", client=es, hosts=fleet)
    lines.append(f"gaps again: {len(after.gaps)} short bucket(s) of {len(after.buckets)}")
    return lines
