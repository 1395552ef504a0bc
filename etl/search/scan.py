"""Read-side helpers over point indices: per-bucket counts (for `monetl gaps`) and exact documents
of a window (for tests and verification)."""

from __future__ import annotations

import datetime as dt

from etl.errors import StoreError
from etl.schema import points_index_pattern
from etl.search.composite import composite_buckets
from etl.window import Window


def _window_query(source: str, window: Window) -> dict:
    return {"bool": {"filter": [
        {"term": {"source": source}},
        {"range": {"@timestamp": {"gte": window.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                                  "lt": window.end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}},
    ]}}


def bucket_counts(client, prefix: str, source: str, window: Window, bucket: dt.timedelta,
                  hosts: list[str] | None = None) -> dict[dt.datetime, int]:
    """Documents per bucket start (epoch-aligned fixed buckets on @timestamp), buckets with none left
    out. Counts every resolution, as the sources' count() does; `hosts` narrows to those hosts."""
    step = int(bucket.total_seconds())
    if step <= 0:
        raise StoreError("bucket must be at least one second")
    query = _window_query(source, window)
    if hosts:
        query["bool"]["filter"].append({"terms": {"host": list(hosts)}})

    def search(aggs: dict) -> dict:
        try:
            return client.search(index=points_index_pattern(prefix, source), size=0, track_total_hits=False,
                                 query=query, aggs=aggs, ignore_unavailable=True, allow_no_indices=True)
        except Exception as exc:
            from etl.search.client import redact_url

            raise StoreError(f"cannot count {source} points in {window}: {redact_url(str(exc))[:500]}") from None

    by_start = [{"start": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{step}s"}}}]
    return {dt.datetime.fromtimestamp(item["key"]["start"] / 1000, tz=dt.timezone.utc): item["doc_count"]
            for item in composite_buckets(search, by_start, size=1000, name="buckets")}


def count(client, prefix: str, source: str, window: Window) -> int:
    response = client.count(index=points_index_pattern(prefix, source), query=_window_query(source, window),
                            ignore_unavailable=True, allow_no_indices=True)
    return int(response["count"])


def documents(client, prefix: str, source: str, window: Window, size: int = 10_000,
              hosts: list[str] | None = None) -> list[dict]:
    """The _source of every point in the window (small windows: tests, spot checks)."""
    query = _window_query(source, window)
    if hosts:
        query["bool"]["filter"].append({"terms": {"host": list(hosts)}})
    response = client.search(index=points_index_pattern(prefix, source), size=size, query=query,
                             sort=[{"itemid": "asc"}, {"@timestamp": "asc"}], ignore_unavailable=True,
                             allow_no_indices=True)
    return [dict(hit["_source"], _id=hit["_id"]) for hit in response["hits"]["hits"]]
