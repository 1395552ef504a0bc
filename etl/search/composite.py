"""Every bucket of a composite aggregation, paged with after_key: the only way to walk all groups
(hosts, items, time buckets, log sources) without a size cap. The caller runs the search itself,
so each keeps its own index, query, options and error message."""

from __future__ import annotations

from typing import Callable, Iterator


def composite_buckets(search: Callable[[dict], dict], sources: list[dict], aggs: dict | None = None,
                      size: int = 500, name: str = "groups") -> Iterator[dict]:
    """Yield the buckets page after page. `search(aggs_body)` returns the search response; the
    composite aggregation in it is called `name`, with `aggs` as its sub-aggregations.

    A page with fewer than `size` buckets is the last: Elasticsearch fills every page but the last
    (a bucket_selector under the composite would break that; no caller uses one)."""
    after = None
    while True:
        composite: dict = {"size": size, "sources": sources}
        if after is not None:
            composite["after"] = after
        body: dict = {name: {"composite": composite}}
        if aggs:
            body[name]["aggs"] = aggs
        response = search(body)
        found = (response.get("aggregations") or {}).get(name) or {}
        buckets = found.get("buckets") or []
        yield from buckets
        after = found.get("after_key")
        if not buckets or not after or len(buckets) < size:
            return
