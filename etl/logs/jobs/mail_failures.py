"""mail_failures: delivery outcomes per recipient domain and per sender, DSN classes, top failure
reasons, queue-delay percentiles, a failure spike against the trailing baseline, and a
pflogsumm-like text summary. All numbers are Elasticsearch aggregations."""

from __future__ import annotations

import math

from etl.logs.jobs.common import (
    Finding, base_query, composite_buckets, evidence_agg, evidence_ids, logs_index, minute_counts, minutes_agg,
    ms_to_dt, search, severity_for,
)
from etl.logs.mailtext import dsn_meaning
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
        "codes": {"terms": {"field": "email.dsn", "size": cfg.get("top_dsn_codes", 20)}},
        # Reasons as normalised at parse time (no per-message IPs/addresses); documents loaded
        # without that field (another shipper) count by their raw reason.
        "fail": {"filter": failed,
                 "aggs": {"reasons": {"terms": {"field": "email.reason_normalized", "size": cfg["top_reasons"]}},
                          "raw": {"filter": {"bool": {"must_not": [{"exists": {"field": "email.reason_normalized"}}]}},
                                  "aggs": {"reasons": {"terms": {"field": "email.reason",
                                                                 "size": cfg["top_reasons"]}}}}}},
        "delay": {"percentiles": {"field": "email.delay_s", "percents": [50, 95]}},
        "null_sender": {"filter": {"term": {"email.from.address": "<>"}},
                        "aggs": {"status": {"terms": {"field": "email.delivery.status", "size": 10}}}},
    }
    aggs_out = search(es, index, query, aggs).get("aggregations", {})
    if not aggs_out:
        return {"counts": {s: 0 for s in STATUSES}, "dsn": {}, "dsn_codes": [], "reasons": [], "delay": {},
                "null_sender": {s: 0 for s in STATUSES}}
    delay = {k: v for k, v in aggs_out["delay"]["values"].items()}
    reasons: dict = {}
    for part in (aggs_out["fail"]["reasons"], aggs_out["fail"]["raw"]["reasons"]):
        for r in part["buckets"]:
            reasons[r["key"]] = reasons.get(r["key"], 0) + r["doc_count"]
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:cfg["top_reasons"]]
    return {
        "counts": _status_counts(aggs_out),
        "dsn": {k: v["doc_count"] for k, v in aggs_out["dsn"]["buckets"].items()},
        "dsn_codes": [(b["key"], b["doc_count"], dsn_meaning(b["key"]) or "") for b in aggs_out["codes"]["buckets"]],
        "reasons": top,
        "delay": {"p50": delay.get("50.0"), "p95": delay.get("95.0")},
        "null_sender": _status_counts(aggs_out["null_sender"]),
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


def spike_threshold(previous: list[int], sigmas: float, min_baseline_mean: float = 0.0) -> float:
    """mean + sigmas x standard deviation of the previous windows; infinite (no spike possible)
    without history or when the baseline mean is below min_baseline_mean: an all-zero baseline
    (a first run, a new server, data loaded only now) says nothing about what is normal."""
    if not previous:
        return math.inf
    mean = sum(previous) / len(previous)
    if mean < min_baseline_mean:
        return math.inf
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
    if total.get("dsn_codes"):
        lines.append("DSN codes")
        lines.extend(f"  {n:>8}  {code:<7} {meaning}" for code, n, meaning in total["dsn_codes"])
    null = total.get("null_sender") or {}
    if sum(null.values()):
        lines.append("Null sender <> (bounces, DSNs): " + ", ".join(f"{s} {null[s]}" for s in STATUSES if null.get(s)))
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
        if r["key"] in ("(none)", "<>"):
            # rejects before RCPT (HELO, client checks) name no domain or sender, and the null
            # sender is bounces of others' mail: summary rows only
            continue
        rate = r["failures"] / r["total"] if r["total"] else 0.0
        if r["failures"] < rule["min_failures"] or rate < rule["min_failure_rate"]:
            continue
        out.append(Finding(JOB, rule_name, severity_for(rule, r["failures"]), r["key"], what, r["failures"], window,
                           counts={s: r[s] for s in STATUSES} | {"failures": r["failures"], "total": r["total"]},
                           first_seen=r["first"], last_seen=r["last"], evidence_ids=r["evidence"],
                           details={"failure_rate": round(rate, 4), "reasons": r["reasons"]},
                           message=f"{r['failures']} of {r['total']} messages failed for {what} {r['key']}"))
    return out


def queue_storage(es, index: str, query: dict, rule: dict, window: Window) -> list[Finding]:
    """The mail queue's disk is full: `452 4.3.1 Insufficient system storage` answers, postfix's
    `not enough free space in mail queue`, sendmail's `Insufficient disk space`; one finding per
    mail host (mail is refused or deferred until space is freed)."""
    signs = {"bool": {"should": [{"terms": {"email.dsn": rule["dsn_codes"]}},
                                 {"terms": {"event.action": rule["actions"]}},
                                 *({"wildcard": {"email.reason": {"value": f"*{text}*", "case_insensitive": True}}}
                                   for text in rule["reason_contains"])]}}
    q = {"bool": {"filter": [query, signs]}}
    aggs = {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}},
            "evidence": evidence_agg(3), "minutes": minutes_agg()}
    out = []
    sources = [{"host": {"terms": {"field": "host.name", "missing_bucket": True}}}]
    for b in composite_buckets(es, index, q, sources, aggs):
        if b["doc_count"] < rule["min_events"]:
            continue
        host = b["key"]["host"] or "(unknown host)"
        out.append(Finding(JOB, "queue_storage", severity_for(rule, b["doc_count"]), host, "mail queue storage",
                           b["doc_count"], window, counts={"events": b["doc_count"]},
                           first_seen=ms_to_dt(b["first"]["value"]), last_seen=ms_to_dt(b["last"]["value"]),
                           evidence_ids=evidence_ids(b), minutes=minute_counts(b),
                           message=f"{b['doc_count']} 'insufficient system storage' events on {host}: the mail "
                                   f"queue disk is full, mail is refused or deferred"))
    return out


def _local(cfg: dict) -> list[str]:
    return sorted({d.strip().lower() for d in cfg.get("local_domains") or [] if d.strip()})


def run(es, prefix: str, window: Window, rules: dict) -> tuple[list[Finding], list[str], dict]:
    cfg = rules[JOB]
    index = logs_index(prefix, cfg["datasets"])
    query = base_query(window, cfg["datasets"], {"exists": {"field": "email.delivery.status"}})
    local = _local(cfg)
    total = totals(es, index, query, cfg)
    # With local_domains set, mail to them is inbound (spam refused at RCPT is not "our domain
    # failing"), and only local senders can be "our senders failing" (not spammers).
    inbound = {"terms": {"email.to.domain": local}}
    outbound_q = base_query(window, cfg["datasets"], {"exists": {"field": "email.delivery.status"}},
                            must_not=[inbound]) if local else query
    sender_q = base_query(window, cfg["datasets"], {"exists": {"field": "email.delivery.status"}},
                          {"terms": {"email.from.domain": local}}) if local else query
    domains = _per_group(es, index, outbound_q, "email.to.domain", cfg["failure_statuses"])
    senders = _per_group(es, index, sender_q, "email.from.address", cfg["failure_statuses"])
    findings = _group_findings("domain_failures", cfg["domain_failures"], domains, window, "recipient-domain")
    findings += _group_findings("sender_failures", cfg["sender_failures"], senders, window, "sender")
    direction = {}
    if local:
        for name, q in (("inbound", base_query(window, cfg["datasets"], {"exists": {"field": "email.delivery.status"}},
                                               inbound)), ("outbound", outbound_q)):
            direction[name] = totals(es, index, q, cfg)["counts"]
    storage_q = base_query(window, cfg["datasets"])
    findings += queue_storage(es, index, storage_q, cfg["queue_storage"], window)
    current, previous = failure_baseline(es, index, window, cfg)
    spike = cfg["spike"]
    threshold = spike_threshold(previous, spike["sigmas"], spike.get("min_baseline_mean", 0.0))
    if current >= spike["min_failures"] and current > threshold:
        mean = sum(previous) / len(previous)
        findings.append(Finding(JOB, "failure_spike", severity_for(spike, current), "mail", "all",
                                current, window, counts={"failures": current, "baseline_mean": round(mean, 2),
                                                         "threshold": round(threshold, 2)},
                                first_seen=window.start, last_seen=window.end,
                                details={"previous_windows": previous},
                                message=f"{current} mail failures in the window vs baseline mean {mean:.1f} "
                                        f"(threshold {threshold:.1f})"))
    summary = pflogsumm(window, total, domains, senders, cfg["top_rows"])
    for name, counts in direction.items():
        summary.append(f"{name.capitalize()} (local domains {', '.join(local)}): "
                       + ", ".join(f"{s} {counts[s]}" for s in STATUSES))
    if math.isinf(threshold) and previous and current >= spike["min_failures"]:
        summary.append(f"Failures this window {current}; no spike check: baseline mean below "
                       f"{spike.get('min_baseline_mean', 0.0)} (first run or no history)")
    else:
        summary.append(f"Failures this window {current}; trailing baseline threshold "
                       f"{'n/a' if math.isinf(threshold) else f'{threshold:.1f}'}")
    stats = {"counts": total["counts"], "dsn": total["dsn"], "delay_s": total["delay"],
             "dsn_codes": [{"code": c, "count": n, "meaning": m} for c, n, m in total["dsn_codes"]],
             "null_sender": total["null_sender"], "direction": direction, "local_domains": local,
             "top_reasons": total["reasons"], "failures": current, "baseline_threshold":
             None if math.isinf(threshold) else threshold, "domains": len(domains), "senders": len(senders)}
    return findings, summary, stats
