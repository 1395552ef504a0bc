"""A panel's Elasticsearch query (Grafana's elasticsearch dataquery JSON) as the search request
Grafana sends: Lucene query_string + range on the time field, bucket aggregations nested in order
with the metrics in the innermost one. Template variables are substituted as Grafana's Lucene
formatting does (one value: quoted; several: ("a" OR "b"); All: *).

Used by `monetl dashboards check` and the tests to run every panel against real data."""

from __future__ import annotations

import datetime as dt
import re

from etl.dashboards.datasources import ALL, ES_TYPE

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def lucene_value(values: list[str] | str | None) -> str:
    if values is None or values == "*" or values == ["*"]:
        return "*"
    if isinstance(values, str):
        values = [values]
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def substitute(text: str, variables: dict) -> str:
    return _VAR.sub(lambda m: lucene_value(variables.get(m.group(1) or m.group(2))), text or "*")


def _interval(setting: str, window: tuple[dt.datetime, dt.datetime]) -> dict:
    if setting in ("", "auto", None):
        # Grafana's auto interval: about 100-1000 buckets over the range; take range / 200, >= 1m.
        seconds = max(60, int((window[1] - window[0]).total_seconds() / 200))
        return {"fixed_interval": f"{seconds}s"}
    return {"fixed_interval": setting}


def _metric(metric: dict) -> dict | None:
    kind, field = metric["type"], metric.get("field")
    settings = metric.get("settings") or {}
    if kind == "count":
        return None
    if kind == "percentiles":
        return {"percentiles": {"field": field, "percents": [float(p) for p in settings.get("percents", [])]}}
    if kind in ("avg", "max", "min", "sum", "cardinality"):
        return {kind: {"field": field}}
    raise ValueError(f"metric type {kind} not supported by the check")


def time_range(field: str, window: tuple[dt.datetime, dt.datetime]) -> dict:
    """As Grafana sends it: epoch milliseconds, whatever the field's own date format."""
    return {"range": {field: {"gte": int(window[0].timestamp() * 1000), "lte": int(window[1].timestamp() * 1000),
                              "format": "epoch_millis"}}}


def search_body(target: dict, window: tuple[dt.datetime, dt.datetime], variables: dict) -> dict:
    ds = ALL[target["datasource"]["uid"]]
    query = {"bool": {"filter": [
        time_range(ds.time_field, window),
        {"query_string": {"query": substitute(target.get("query", "*"), variables), "analyze_wildcard": True}},
    ]}}
    metrics = {m["id"]: _metric(m) for m in target.get("metrics", [])}
    inner = {mid: body for mid, body in metrics.items() if body is not None}
    aggs: dict = inner
    for bucket in reversed(target.get("bucketAggs", [])):
        settings = bucket.get("settings") or {}
        if bucket["type"] == "terms":
            spec = {"field": bucket["field"], "size": int(settings.get("size", 10)),
                    "min_doc_count": int(settings.get("min_doc_count", 1))}
            order_by = settings.get("orderBy", "_count")
            if order_by in ("_count", "_key") or order_by in inner:
                spec["order"] = {order_by: settings.get("order", "desc")}
            body = {"terms": spec}
        elif bucket["type"] == "date_histogram":
            body = {"date_histogram": {"field": bucket["field"], **_interval(settings.get("interval"), window),
                                       "min_doc_count": int(settings.get("min_doc_count", 0)),
                                       "extended_bounds": {"min": int(window[0].timestamp() * 1000),
                                                           "max": int(window[1].timestamp() * 1000) - 1}}}
        else:
            raise ValueError(f"bucket type {bucket['type']} not supported by the check")
        if aggs:
            body["aggs"] = aggs
        aggs = {bucket["id"]: body}
    return {"size": 0, "query": query, "aggs": aggs, "track_total_hits": True}


def leaf_values(aggregations: dict, target: dict) -> list:
    """Every innermost bucket that holds documents, as (path, doc_count, metric values)."""
    bucket_ids = [b["id"] for b in target.get("bucketAggs", [])]
    metric_ids = [m["id"] for m in target.get("metrics", []) if m["type"] != "count"]
    out = []

    def walk(node: dict, depth: int, path: tuple) -> None:
        if depth == len(bucket_ids):
            if node.get("doc_count", 0) > 0:
                out.append((path, node["doc_count"], {m: node.get(m) for m in metric_ids}))
            return
        for b in node.get(bucket_ids[depth], {}).get("buckets", []):
            walk(b, depth + 1, path + (b["key"],))

    walk(aggregations, 0, ())
    return out


def elasticsearch_targets(dashboard: dict):
    """(panel title, target) of every Elasticsearch query of a dashboard."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if (target.get("datasource") or {}).get("type") == ES_TYPE:
                yield panel.get("title", ""), target


def run_target(es, prefix: str, target: dict, window, variables: dict) -> list:
    ds = ALL[target["datasource"]["uid"]]
    body = search_body(target, window, variables)
    found = es.search(index=ds.index_for(prefix), ignore_unavailable=True, allow_no_indices=True, **body)
    return leaf_values(found.get("aggregations", {}), target)
