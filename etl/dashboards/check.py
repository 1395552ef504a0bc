"""Run every Elasticsearch panel query of the dashboards against the real cluster, over the time
range the data of its datasource covers, with each template variable set to All (*) or to its first
value (each variable's own terms query, as Grafana resolves it, in dependency order)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from etl.dashboards.datasources import ALL, ES_TYPE
from etl.dashboards.es_request import elasticsearch_targets, run_target, substitute, time_range

UTC = dt.timezone.utc


@dataclass
class PanelResult:
    dashboard: str
    panel: str
    buckets: int
    error: str = ""

    def line(self) -> str:
        state = "OK  " if self.buckets and not self.error else "FAIL"
        return f"{state} {self.dashboard} / {self.panel}: {self.error or f'{self.buckets} buckets'}"


def data_range(es, prefix: str, uid: str) -> tuple[dt.datetime, dt.datetime] | None:
    ds = ALL[uid]
    found = es.search(index=ds.index_for(prefix), size=0, ignore_unavailable=True, allow_no_indices=True,
                      aggs={"lo": {"min": {"field": ds.time_field}}, "hi": {"max": {"field": ds.time_field}}})
    lo, hi = (found.get("aggregations", {}).get(k, {}).get("value") for k in ("lo", "hi"))
    if lo is None or hi is None:
        return None
    return dt.datetime.fromtimestamp(lo / 1000, UTC), dt.datetime.fromtimestamp(hi / 1000 + 1, UTC)


def top_values(es, prefix: str, dashboard: dict, ranges: dict) -> dict:
    """Each query variable set to its most frequent value (as an operator picks the busiest group,
    host, item), its own query seeing the values chosen before it."""
    chosen: dict = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        ds = (variable.get("datasource") or {})
        if variable.get("type") != "query" or ds.get("type") != ES_TYPE:
            continue
        body = json.loads(variable["query"])
        window = ranges.get(ds["uid"])
        if window is None:
            chosen[variable["name"]] = "*"
            continue
        src = ALL[ds["uid"]]
        query = {"bool": {"filter": [
            time_range(src.time_field, window),
            {"query_string": {"query": substitute(body.get("query", "*"), chosen)}}]}}
        found = es.search(index=src.index_for(prefix), size=0, query=query, ignore_unavailable=True,
                          allow_no_indices=True, aggs={"v": {"terms": {"field": body["field"], "size": 1}}})
        buckets = found.get("aggregations", {}).get("v", {}).get("buckets", [])
        chosen[variable["name"]] = str(buckets[0].get("key_as_string", buckets[0]["key"])) if buckets else "*"
    return chosen


def check_all(es, prefix: str, dashboards: dict[str, dict], mode: str = "all") -> list[PanelResult]:
    ranges = {uid: data_range(es, prefix, uid) for uid, ds in ALL.items() if ds.type == ES_TYPE}
    out = []
    for name, body in dashboards.items():
        variables = top_values(es, prefix, body, ranges) if mode == "top" else {}
        for title, target in elasticsearch_targets(body):
            window = ranges[target["datasource"]["uid"]]
            if window is None:
                out.append(PanelResult(name, title, 0, f"no data in {ALL[target['datasource']['uid']].index_for(prefix)}"))
                continue
            try:
                leaves = run_target(es, prefix, target, window, variables)
            except Exception as exc:  # the request itself is wrong: report it per panel
                out.append(PanelResult(name, title, 0, f"{type(exc).__name__}: {str(exc)[:300]}"))
                continue
            out.append(PanelResult(name, title, len(leaves)))
    return out
