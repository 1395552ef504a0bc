"""trade_perf: per minute and trade.type (and branch/channel when present) volume, success rate,
latency p50/p95/p99 (TDigest percentiles of event.duration), SLA breaches and Apdex; the same per
url.path over the real HAProxy and IIS logs. Minute rows go to the lake; window-level breaches of
the thresholds in rules.json become findings."""

from __future__ import annotations

from etl.logs.jobs.common import (
    NS_PER_MS, Finding, base_query, composite_buckets, evidence_agg, evidence_ids, logs_index, ms_to_dt, search,
    severity_for,
)
from etl.window import Window

JOB = "trade_perf"


def _latency_aggs(apdex_t_ms: float, sla_ms: float, success: dict) -> dict:
    t_ns, sla_ns = int(apdex_t_ms * NS_PER_MS), int(sla_ms * NS_PER_MS)
    # Range "to" is exclusive; durations are whole nanoseconds, so "<= T" is "< T + 1".
    return {
        "ok": {"filter": success},
        "latency": {"percentiles": {"field": "event.duration", "percents": [50, 95, 99],
                                    "tdigest": {"compression": 200}}},
        "apdex": {"range": {"field": "event.duration", "keyed": True, "ranges": [
            {"key": "satisfied", "to": t_ns + 1}, {"key": "tolerating", "from": t_ns + 1, "to": 4 * t_ns + 1}]}},
        "breach": {"filter": {"range": {"event.duration": {"gt": sla_ns}}}, "aggs": {"evidence": evidence_agg(2)}},
    }


def _ms(value) -> float | None:
    return None if value is None else value / NS_PER_MS


def metric_row(window: Window, dataset: str, target: str, dims: dict, b: dict, apdex_t_ms: float,
               sla_ms: float, rule: str = "minute_metrics") -> dict:
    volume = b["doc_count"]
    sat = b["apdex"]["buckets"]["satisfied"]["doc_count"]
    tol = b["apdex"]["buckets"]["tolerating"]["doc_count"]
    pct = b["latency"]["values"]
    minute = b["key"].get("minute")
    return {
        "job": JOB, "rule": rule, "source": dataset, "target": target,
        "branch": dims.get("trade.branch"), "channel": dims.get("trade.channel"),
        "bucket": ms_to_dt(minute) if minute is not None else window.start,
        "volume": volume, "success": b["ok"]["doc_count"],
        "success_rate": b["ok"]["doc_count"] / volume if volume else None,
        "p50_ms": _ms(pct.get("50.0")), "p95_ms": _ms(pct.get("95.0")), "p99_ms": _ms(pct.get("99.0")),
        "sla_ms": float(sla_ms), "sla_breaches": b["breach"]["doc_count"],
        "apdex_t_ms": float(apdex_t_ms), "satisfied": sat, "tolerating": tol,
        "apdex": (sat + tol / 2) / volume if volume else None,
        "window_start": window.start, "window_end": window.end,
        "_evidence": evidence_ids(b["breach"]),
    }


def _dimension_sources(dimensions: list[str]) -> list[dict]:
    return [{f"d{i}": {"terms": {"field": name, "missing_bucket": True}}} for i, name in enumerate(dimensions)]


def _dims(b: dict, dimensions: list[str]) -> dict:
    return {name: b["key"][f"d{i}"] for i, name in enumerate(dimensions)}


def _trade_types(es, index: str, query: dict) -> list[str]:
    aggs = {"types": {"terms": {"field": "trade.type", "size": 1000}}}
    buckets = search(es, index, query, aggs).get("aggregations", {}).get("types", {}).get("buckets", [])
    return sorted(b["key"] for b in buckets)


def trade_rows(es, prefix: str, window: Window, cfg: dict) -> list[dict]:
    """Minute rows per trade.type x minute_dimensions, plus one row per trade.type x
    window_dimensions for the whole window (branches are too many to cut by the minute)."""
    dataset = cfg["trade_dataset"]
    index = logs_index(prefix, [dataset])
    query = base_query(window, [dataset], {"exists": {"field": "event.duration"}})
    rows = []
    success = {"term": {"event.outcome": "success"}}
    minute = [{"minute": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m"}}}]
    # One pass per trade type: each type has its own SLA, which sets the breach range.
    for trade_type in _trade_types(es, index, query):
        sla = cfg["sla_ms"].get(trade_type, cfg["sla_ms"]["default"])
        typed = base_query(window, [dataset], {"exists": {"field": "event.duration"}},
                           {"term": {"trade.type": trade_type}})
        aggs = _latency_aggs(cfg["apdex_t_ms"], sla, success)
        for rule, sources, dims in (("minute_metrics", minute + _dimension_sources(cfg["minute_dimensions"]),
                                     cfg["minute_dimensions"]),
                                    ("window_metrics", _dimension_sources(cfg["window_dimensions"]),
                                     cfg["window_dimensions"])):
            for b in composite_buckets(es, index, typed, sources, aggs):
                rows.append(metric_row(window, dataset, trade_type, _dims(b, dims), b, cfg["apdex_t_ms"], sla, rule))
    return rows


def web_rows(es, prefix: str, window: Window, cfg: dict) -> list[dict]:
    """Per minute and url path (IIS) or backend (HAProxy): the group field per dataset is in rules."""
    web = cfg["web"]
    # A web request "succeeds" unless the server failed it (5xx); 4xx is the client's doing.
    success = {"range": {"http.response.status_code": {"lt": 500}}}
    rows = []
    for dataset in web["datasets"]:
        group_field = web["group_by"].get(dataset, web["group_by"]["default"])
        index = logs_index(prefix, [dataset])
        query = base_query(window, [dataset], {"exists": {"field": "event.duration"}})
        sources = [{"minute": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m"}}},
                   {"target": {"terms": {"field": group_field, "missing_bucket": True}}}]
        aggs = _latency_aggs(web["apdex_t_ms"], web["sla_ms"], success)
        for b in composite_buckets(es, index, query, sources, aggs):
            rows.append(metric_row(window, dataset, b["key"]["target"] or "(none)", {}, b,
                                   web["apdex_t_ms"], web["sla_ms"]))
    return rows


def window_findings(rows: list[dict], window: Window, cfg: dict, min_volume: int) -> list[Finding]:
    """Rates over the whole window per (dataset, target): SLA-breach rate, success rate, Apdex."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r["rule"] != "minute_metrics":
            continue  # window rows re-cut the same requests
        g = groups.setdefault((r["source"], r["target"]), {"volume": 0, "success": 0, "breaches": 0, "sat": 0,
                                                           "tol": 0, "first": None, "last": None, "evidence": [],
                                                           "sla_ms": r["sla_ms"], "worst_p99": 0.0})
        g["volume"] += r["volume"]
        g["success"] += r["success"]
        g["breaches"] += r["sla_breaches"]
        g["sat"] += r["satisfied"]
        g["tol"] += r["tolerating"]
        g["worst_p99"] = max(g["worst_p99"], r["p99_ms"] or 0.0)
        if r["sla_breaches"]:
            g["first"] = min(filter(None, [g["first"], r["bucket"]]), default=None)
            g["last"] = max(filter(None, [g["last"], r["bucket"]]), default=None)
            g["evidence"] = (g["evidence"] + r["_evidence"])[:4]
    out = []
    for (dataset, target), g in sorted(groups.items()):
        volume = g["volume"]
        if volume < min_volume:
            continue
        breach_rate = g["breaches"] / volume
        success_rate = g["success"] / volume
        apdex = (g["sat"] + g["tol"] / 2) / volume
        counts = {"volume": volume, "success": g["success"], "sla_breaches": g["breaches"],
                  "satisfied": g["sat"], "tolerating": g["tol"]}
        details = {"breach_rate": round(breach_rate, 4), "success_rate": round(success_rate, 4),
                   "apdex": round(apdex, 4), "sla_ms": g["sla_ms"], "worst_minute_p99_ms": round(g["worst_p99"], 3)}
        checks = [
            ("sla_breach_rate", breach_rate > cfg["sla_breach_rate"]["max_rate"], cfg["sla_breach_rate"], breach_rate,
             f"{g['breaches']} of {volume} {target} requests over the {g['sla_ms']:.0f} ms SLA"),
            ("low_success_rate", success_rate < cfg["success_rate"]["min_rate"], cfg["success_rate"], 1 - success_rate,
             f"{target} success rate {success_rate:.1%}"),
            ("low_apdex", apdex < cfg["apdex"]["min_score"], cfg["apdex"], 1 - apdex, f"{target} Apdex {apdex:.2f}"),
        ]
        for rule_name, hit, rule, score, message in checks:
            if hit:
                out.append(Finding(JOB, rule_name, severity_for(rule, score), dataset, target, g["breaches"]
                                   if rule_name == "sla_breach_rate" else volume, window, counts=counts,
                                   first_seen=g["first"] or window.start, last_seen=g["last"] or window.end,
                                   evidence_ids=g["evidence"], details=details, message=message))
    return out


def run(es, prefix: str, window: Window, rules: dict) -> tuple[list[Finding], list[dict], list[str], dict]:
    cfg = rules[JOB]
    trade = trade_rows(es, prefix, window, cfg)
    web = web_rows(es, prefix, window, cfg)
    findings = window_findings(trade, window, cfg, cfg["min_volume_for_findings"])
    findings += window_findings(web, window, cfg, cfg["web"]["min_volume_for_findings"])
    summary, stats = [], {}
    for label, rows in (("trade", trade), ("web", web)):
        minute_rows = [r for r in rows if r["rule"] == "minute_metrics"]
        volume = sum(r["volume"] for r in minute_rows)
        breaches = sum(r["sla_breaches"] for r in minute_rows)
        targets = len({(r["source"], r["target"]) for r in minute_rows})
        stats[label] = {"requests": volume, "sla_breaches": breaches, "minute_rows": len(minute_rows),
                        "window_rows": len(rows) - len(minute_rows), "targets": targets}
        summary.append(f"{label}: {volume} requests in {len(minute_rows)} minute rows over {targets} types/paths, "
                       f"{breaches} SLA breaches")
    return findings, trade + web, summary, stats
