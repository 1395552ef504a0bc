"""mail_failures: delivery outcomes per recipient domain and per sender, DSN classes, top failure
reasons, queue-delay percentiles, a failure spike against the trailing baseline, and a
pflogsumm-like text summary. All numbers are Elasticsearch aggregations."""

from __future__ import annotations

import math

from etl.logs.jobs.common import (
    Finding, base_query, composite_buckets, evidence_agg, evidence_ids, logs_index, ms_to_dt, search,
    severity_for,
)
from etl.window import Window

JOB = "mail_failures"
STATUSES = ("sent", "deferred", "bounced", "expired", "rejected")


def _status_counts(bucket: dict) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for s in bucket["status"]["buckets"]:
        counts[s["key"]] = s["doc_count"]
    return counts


def _per_group(es, index: str, query: dict, field_name: str, failure_statuses) -> list[dict]:
    aggs = {"status": {"terms": {"field": "email.delivery.status", "size": 10}},
            "first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}},
            "fail": {"filter": {"terms": {"email.delivery.status": list(failure_statuses)}},
                     "aggs": {"evidence": evidence_agg(3),
                              "reasons": {"terms": {"field": "email.reason", "size": 3}}}}}
    rows = []
    sources = [{"key": {"terms": {"field": field_name, "missing_bucket": True}}}]
    for b in composite_buckets(es, index, query, sources, aggs):
        counts = _status_counts(b)
        failures = b["fail"]["doc_count"]
        rows.append({"key": b["key"]["key"] or "(none)", "total": b["doc_count"], "failures": failures,
                     **counts, "first": ms_to_dt(b["first"]["value"]), "last": ms_to_dt(b["last"]["value"]),
                     "evidence": evidence_ids(b["fail"]),
                     "reasons": [r["key"] for r in b["fail"]["reasons"]["buckets"]]})
    return rows


def totals(es, index: str, query: dict, cfg: dict) -> dict:
    failed = {"terms": {"email.delivery.status": cfg["failure_statuses"]}}
    aggs = {
        "status": {"terms": {"field": "email.delivery.status", "size": 10}},
        "dsn": {"filters": {"filters": {f"{c}.x.x": {"prefix": {"email.dsn": f"{c}."}} for c in (2, 4, 5)}}},
        "fail": {"filter": failed,
                 "aggs": {"reasons": {"terms": {"field": "email.reason", "size": cfg["top_reasons"]}}}},
        "delay": {"percentiles": {"field": "email.delay_s", "percents": [50, 95]}},
    }
    aggs_out = search(es, index, query, aggs).get("aggregations", {})
    if not aggs_out:
        return {"counts": {s: 0 for s in STATUSES}, "dsn": {}, "reasons": [], "delay": {}}
    delay = {k: v for k, v in aggs_out["delay"]["values"].items()}
    return {
        "counts": _status_counts(aggs_out),
        "dsn": {k: v["doc_count"] for k, v in aggs_out["dsn"]["buckets"].items()},
        "reasons": [(r["key"], r["doc_count"]) for r in aggs_out["fail"]["reasons"]["buckets"]],
        "delay": {"p50": delay.get("50.0"), "p95": delay.get("95.0")},
    }


def failure_baseline(es, index: str, window: Window, cfg: dict) -> tuple[int, list[int]]:
    """Failures in this window and in each of the previous N windows of the same length, as one
    date_histogram aligned to the window start (empty windows count as zero)."""
    n = cfg["spike"]["baseline_windows"]
    length_s = max(1, int(window.duration.total_seconds()))
    # Timestamps are date_nanos, which cannot go before 1970: very long windows get a shorter history.
    n = min(n, max(0, window.start_s // length_s - 1))
    history = window.widened(before=window.duration * n)
    offset = window.start_s % length_s
    query = base_query(history, cfg["datasets"], {"terms": {"email.delivery.status": cfg["failure_statuses"]}})
    aggs = {"per": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{length_s}s", "offset": f"{offset}s",
                                       "min_doc_count": 0,
                                       "extended_bounds": {"min": history.start_s * 1000,
                                                           "max": (window.end_s - 1) * 1000}}}}
    buckets = search(es, index, query, aggs).get("aggregations", {}).get("per", {}).get("buckets", [])
    counts = {int(b["key"]) // 1000: b["doc_count"] for b in buckets}
    current = counts.get(window.start_s, 0)
    previous = [counts.get(window.start_s - i * length_s, 0) for i in range(1, n + 1)]
    return current, previous


def spike_threshold(previous: list[int], sigmas: float) -> float:
    if not previous:
        return math.inf
    mean = sum(previous) / len(previous)
    var = sum((x - mean) ** 2 for x in previous) / len(previous)
    return mean + sigmas * math.sqrt(var)


def pflogsumm(window: Window, total: dict, domains: list[dict], senders: list[dict], top: int) -> list[str]:
    counts = total["counts"]
    all_msgs = sum(counts.values())
    lines = [f"Mail summary {window}", "Grand totals"]
    for s in STATUSES:
        share = f"{100.0 * counts[s] / all_msgs:5.1f}%" if all_msgs else "    -"
        lines.append(f"  {counts[s]:>8}  {s:<9} {share}")
    lines.append("DSN classes: " + ", ".join(f"{k} {v}" for k, v in sorted(total["dsn"].items())))
    delay = total["delay"]
    if delay.get("p50") is not None:
        lines.append(f"Queue delay: p50 {delay['p50']:.1f}s  p95 {delay['p95']:.1f}s")
    if total["reasons"]:
        lines.append("Top failure reasons")
        lines.extend(f"  {n:>8}  {reason[:100]}" for reason, n in total["reasons"])
    header = f"  {'sent':>6} {'defer':>6} {'bounce':>6} {'expire':>6} {'reject':>6}  "
    for title, rows in (("Per recipient domain", domains), ("Per sender", senders)):
        if rows:
            lines.append(title)
            lines.append(header + "key")
            for r in sorted(rows, key=lambda r: (-r["failures"], r["key"]))[:top]:
                lines.append(f"  {r['sent']:>6} {r['deferred']:>6} {r['bounced']:>6} {r['expired']:>6} "
                             f"{r['rejected']:>6}  {r['key']}")
    return lines


def _group_findings(rule_name: str, rule: dict, rows: list[dict], window: Window, what: str) -> list[Finding]:
    out = []
    for r in rows:
        if r["key"] == "(none)":
            continue  # rejects before RCPT (HELO, client checks) name no domain or sender: summary only
        rate = r["failures"] / r["total"] if r["total"] else 0.0
        if r["failures"] < rule["min_failures"] or rate < rule["min_failure_rate"]:
            continue
        out.append(Finding(JOB, rule_name, severity_for(rule, r["failures"]), r["key"], what, r["failures"], window,
                           counts={s: r[s] for s in STATUSES} | {"failures": r["failures"], "total": r["total"]},
                           first_seen=r["first"], last_seen=r["last"], evidence_ids=r["evidence"],
                           details={"failure_rate": round(rate, 4), "reasons": r["reasons"]},
                           message=f"{r['failures']} of {r['total']} messages failed for {what} {r['key']}"))
    return out


def run(es, prefix: str, window: Window, rules: dict) -> tuple[list[Finding], list[str], dict]:
    cfg = rules[JOB]
    index = logs_index(prefix, cfg["datasets"])
    query = base_query(window, cfg["datasets"], {"exists": {"field": "email.delivery.status"}})
    total = totals(es, index, query, cfg)
    domains = _per_group(es, index, query, "email.to.domain", cfg["failure_statuses"])
    senders = _per_group(es, index, query, "email.from.address", cfg["failure_statuses"])
    findings = _group_findings("domain_failures", cfg["domain_failures"], domains, window, "recipient-domain")
    findings += _group_findings("sender_failures", cfg["sender_failures"], senders, window, "sender")
    current, previous = failure_baseline(es, index, window, cfg)
    threshold = spike_threshold(previous, cfg["spike"]["sigmas"])
    if current >= cfg["spike"]["min_failures"] and current > threshold:
        mean = sum(previous) / len(previous)
        findings.append(Finding(JOB, "failure_spike", severity_for(cfg["spike"], current), "mail", "all",
                                current, window, counts={"failures": current, "baseline_mean": round(mean, 2),
                                                         "threshold": round(threshold, 2)},
                                first_seen=window.start, last_seen=window.end,
                                details={"previous_windows": previous},
                                message=f"{current} mail failures in the window vs baseline mean {mean:.1f} "
                                        f"(threshold {threshold:.1f})"))
    summary = pflogsumm(window, total, domains, senders, cfg["top_rows"])
    summary.append(f"Failures this window {current}; trailing baseline threshold "
                   f"{'n/a' if math.isinf(threshold) else f'{threshold:.1f}'}")
    stats = {"counts": total["counts"], "dsn": total["dsn"], "delay_s": total["delay"],
             "top_reasons": total["reasons"], "failures": current, "baseline_threshold":
             None if math.isinf(threshold) else threshold, "domains": len(domains), "senders": len(senders)}
    return findings, summary, stats
