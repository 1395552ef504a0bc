"""illegal_access: brute force, invalid-user probing, success after failures, logins from outside
the allowlist, privileged logins outside business hours, web 401/403 floods, admin-console brute
force, scanner paths, Windows password spraying. One composite aggregation per rule; thresholds
in schemas/logs/rules.json."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from etl.logs.jobs.common import (
    Finding, base_query, composite_buckets, evidence_agg, evidence_ids, logs_index, ms_to_dt,
    severity_for, window_range,
)
from etl.window import Window

JOB = "illegal_access"
_BY_SOURCE = [{"source": {"terms": {"field": "source.ip"}}}]
_SPAN = {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}}


def _action_clause(action: str) -> dict:
    if action.endswith("*"):
        return {"prefix": {"event.action": action[:-1]}}
    return {"term": {"event.action": action}}


def actions_filter(per_dataset: dict, outcome: str, extra: dict | None = None) -> dict:
    """One attempt per login: (dataset d AND action in per_dataset[d]) for every d, with the outcome."""
    should = []
    for dataset in sorted(set(per_dataset) | set(extra or {})):
        actions = list(per_dataset.get(dataset, [])) + list((extra or {}).get(dataset, []))
        should.append({"bool": {"filter": [{"term": {"event.dataset": dataset}},
                                           {"bool": {"should": [_action_clause(a) for a in actions]}}]}})
    return {"bool": {"filter": [{"term": {"event.outcome": outcome}}, {"bool": {"should": should}}]}}


def failures(rules: dict) -> dict:
    return actions_filter(rules["login_failure_actions"], "failure")


def successes(rules: dict) -> dict:
    return actions_filter(rules["login_success_actions"], "success")


def auth_datasets(rules: dict) -> list[str]:
    return sorted(set(rules["login_failure_actions"]) | set(rules["login_success_actions"]))


def _targets(bucket: dict, name: str = "targets") -> str:
    return ",".join(sorted(b["key"] for b in bucket.get(name, {}).get("buckets", [])))


def _span(bucket: dict) -> tuple:
    return ms_to_dt(bucket["first"]["value"]), ms_to_dt(bucket["last"]["value"])


def peak_within(histogram_buckets: list[dict], half_ms: int) -> int:
    """Largest count in two consecutive half-T buckets: the failures seen within any T-long
    stretch aligned to half-T steps. Counts come from Elasticsearch; no documents are read."""
    counts = {int(b["key"]): int(b["doc_count"]) for b in histogram_buckets}
    best = 0
    for key, count in counts.items():
        best = max(best, count + counts.get(key + half_ms, 0))
    return best


def brute_force(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["brute_force"]
    n, minutes = rule["min_failures"], rule["within_minutes"]
    half_ms = minutes * 60_000 // 2
    query = base_query(window, None, failures(rules), {"exists": {"field": "source.ip"}})
    aggs = {**_SPAN, "users": {"cardinality": {"field": "user.name"}},
            "targets": {"terms": {"field": "host.name", "size": 3}},
            "halves": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{half_ms}ms",
                                          "min_doc_count": 1}},
            "evidence": evidence_agg()}
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        if b["doc_count"] < n:
            continue
        peak = peak_within(b["halves"]["buckets"], half_ms)
        if peak < n:
            continue
        first, last = _span(b)
        out.append(Finding(JOB, "brute_force", severity_for(rule, peak), b["key"]["source"], _targets(b),
                           b["doc_count"], window,
                           counts={"failures": b["doc_count"], f"peak_in_{minutes}m": peak,
                                   "distinct_users": b["users"]["value"]},
                           first_seen=first, last_seen=last, evidence_ids=evidence_ids(b),
                           message=f"{peak} failed logins within {minutes} min from {b['key']['source']}"))
    return out


def _many_users_per_source(es, index: str, window: Window, query: dict, rule_name: str, rule: dict,
                           describe, extra_aggs: dict | None = None) -> list[Finding]:
    """Sources that failed as at least rule["min_distinct_users"] distinct user names: the one
    detector behind invalid-user probing and password spraying. `describe(bucket, users)` gives the
    rule's extra details and its message."""
    aggs = {**_SPAN, "users": {"cardinality": {"field": "user.name"}},
            "sample_users": {"terms": {"field": "user.name", "size": 10}},
            "targets": {"terms": {"field": "host.name", "size": 3}}, "evidence": evidence_agg(),
            **(extra_aggs or {})}
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        users = b["users"]["value"]
        if users < rule["min_distinct_users"]:
            continue
        first, last = _span(b)
        details, message = describe(b, users)
        out.append(Finding(JOB, rule_name, severity_for(rule, users), b["key"]["source"], _targets(b),
                           users, window, counts={"distinct_users": users, "failures": b["doc_count"]},
                           first_seen=first, last_seen=last, evidence_ids=evidence_ids(b),
                           details={"users": [u["key"] for u in b["sample_users"]["buckets"]], **details},
                           message=message))
    return out


def invalid_user_probe(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["invalid_user_probe"]
    # Windows accounts tried from one source are password_spray; here the Unix/mail services.
    unix = {d: a for d, a in rules["login_failure_actions"].items() if d != "windows.security"}
    query = base_query(window, None, actions_filter(unix, "failure", rules["probe_extra_actions"]),
                       {"exists": {"field": "source.ip"}}, {"exists": {"field": "user.name"}})
    return _many_users_per_source(
        es, index, window, query, "invalid_user_probe", rule,
        lambda b, users: ({}, f"{users} user names tried from {b['key']['source']}"))


def success_after_failures(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["success_after_failures"]
    lookback = window.widened(before=dt.timedelta(minutes=rule["lookback_minutes"]))
    failed, succeeded = failures(rules), successes(rules)
    query = base_query(lookback, None, {"bool": {"should": [failed, succeeded]}}, {"exists": {"field": "source.ip"}})
    aggs = {
        "failures": {"filter": failed, "aggs": {"first": {"min": {"field": "@timestamp"}}}},
        # Only a success inside this window makes a finding of this window.
        "successes": {"filter": {"bool": {"filter": [succeeded, window_range(window)]}},
                      "aggs": {"last": {"max": {"field": "@timestamp"}},
                               "users": {"terms": {"field": "user.name", "size": 3}},
                               "evidence": evidence_agg(2)}},
        "fail_evidence": {"filter": failed, "aggs": {"evidence": evidence_agg(2)}},
    }
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        fails, wins = b["failures"], b["successes"]
        if fails["doc_count"] < rule["min_failures"] or wins["doc_count"] == 0:
            continue
        first_fail, last_win = ms_to_dt(fails["first"]["value"]), ms_to_dt(wins["last"]["value"])
        if last_win is None or first_fail is None or last_win <= first_fail:
            continue
        users = ",".join(sorted(u["key"] for u in wins["users"]["buckets"]))
        out.append(Finding(JOB, "success_after_failures", severity_for(rule, fails["doc_count"]),
                           b["key"]["source"], users, fails["doc_count"], window,
                           counts={"failures": fails["doc_count"], "successes": wins["doc_count"]},
                           first_seen=first_fail, last_seen=last_win,
                           evidence_ids=evidence_ids(b["fail_evidence"]) + evidence_ids(wins),
                           message=f"login as {users} from {b['key']['source']} after "
                                   f"{fails['doc_count']} failures: possible compromise"))
    return out


def outside_allowlist(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["outside_allowlist"]
    # source.ip is an `ip` field, so a CIDR in a term query matches the whole range.
    allowed = [{"term": {"source.ip": cidr}} for cidr in rule["allowed_cidrs"]]
    query = base_query(window, None, successes(rules), {"exists": {"field": "source.ip"}}, must_not=allowed)
    sources = _BY_SOURCE + [{"user": {"terms": {"field": "user.name", "missing_bucket": True}}}]
    aggs = {**_SPAN, "evidence": evidence_agg(2)}
    out = []
    for b in composite_buckets(es, index, query, sources, aggs):
        first, last = _span(b)
        user = b["key"]["user"] or ""
        out.append(Finding(JOB, "outside_allowlist", severity_for(rule, b["doc_count"]), b["key"]["source"], user,
                           b["doc_count"], window, counts={"logins": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b),
                           message=f"{b['doc_count']} logins as {user or '?'} from {b['key']['source']}, "
                                   f"outside the allowed networks"))
    return out


def is_business_hour(local: dt.datetime, rule: dict) -> bool:
    return (local.isoweekday() in rule["business_days"]
            and rule["business_start_hour"] <= local.hour < rule["business_end_hour"])


def privileged_offhours(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["privileged_offhours"]
    zone = ZoneInfo(rule["time_zone"])
    privileged_user = [{"term": {"user.name": {"value": u, "case_insensitive": True}}} for u in rule["users"]]
    privileged = {"bool": {"should": [
        {"bool": {"filter": [successes(rules), {"bool": {"should": privileged_user}}]}},
        # sudo/su as actions: their pam session lines (same process) would count each use twice.
        {"bool": {"filter": [{"terms": {"event.action": rule["actions"]}}, {"term": {"event.outcome": "success"}}]}},
    ]}}
    query = base_query(window, None, privileged)
    sources = [{"user": {"terms": {"field": "user.name", "missing_bucket": True}}},
               {"host": {"terms": {"field": "host.name", "missing_bucket": True}}},
               {"source": {"terms": {"field": "source.ip", "missing_bucket": True}}},
               {"hour": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1h",
                                            "time_zone": rule["time_zone"]}}}]
    aggs = {**_SPAN, "evidence": evidence_agg(2)}
    grouped: dict[tuple, dict] = {}
    for b in composite_buckets(es, index, query, sources, aggs):
        local_hour = ms_to_dt(b["key"]["hour"]).astimezone(zone)
        if is_business_hour(local_hour, rule):
            continue
        key = (b["key"]["user"] or "", b["key"]["host"] or "", b["key"]["source"] or "")
        g = grouped.setdefault(key, {"count": 0, "first": None, "last": None, "evidence": [], "hours": []})
        first, last = _span(b)
        g["count"] += b["doc_count"]
        g["first"] = min(filter(None, [g["first"], first]), default=None)
        g["last"] = max(filter(None, [g["last"], last]), default=None)
        g["evidence"] = (g["evidence"] + evidence_ids(b))[:4]
        g["hours"].append(local_hour.strftime("%Y-%m-%d %H:00"))
    out = []
    for (user, host, source), g in sorted(grouped.items()):
        out.append(Finding(JOB, "privileged_offhours", severity_for(rule, g["count"]), source or host, user,
                           g["count"], window, counts={"events": g["count"]}, first_seen=g["first"],
                           last_seen=g["last"], evidence_ids=g["evidence"],
                           details={"local_hours": g["hours"][:24], "time_zone": rule["time_zone"], "host": host},
                           message=f"privileged activity by {user or '?'} on {host or source} outside business "
                                   f"hours ({rule['time_zone']})"))
    return out


def web_auth_flood(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["web_auth_flood"]
    query = base_query(window, rules["web_datasets"], {"terms": {"http.response.status_code": rule["statuses"]}},
                       {"exists": {"field": "source.ip"}})
    aggs = {**_SPAN, "paths": {"terms": {"field": "url.path", "size": 5}}, "evidence": evidence_agg()}
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        if b["doc_count"] < rule["min_denied"]:
            continue
        first, last = _span(b)
        top = b["paths"]["buckets"][0]["key"] if b["paths"]["buckets"] else ""
        out.append(Finding(JOB, "web_auth_flood", severity_for(rule, b["doc_count"]), b["key"]["source"], top,
                           b["doc_count"], window, counts={"denied": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b),
                           details={"paths": {p["key"]: p["doc_count"] for p in b["paths"]["buckets"]}},
                           message=f"{b['doc_count']} HTTP 401/403 answers to {b['key']['source']}"))
    return out


def admin_console_bruteforce(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["admin_console_bruteforce"]
    prefixes = {"bool": {"should": [{"prefix": {"url.path": {"value": p, "case_insensitive": True}}}
                                    for p in rule["path_prefixes"]]}}
    query = base_query(window, rules["web_datasets"], prefixes, {"exists": {"field": "source.ip"}})
    aggs = {**_SPAN,
            "denied": {"filter": {"terms": {"http.response.status_code": rule["denied_statuses"]}},
                       "aggs": {"evidence": evidence_agg(3)}},
            "users": {"terms": {"field": "user.name", "size": 5}},
            "consoles": {"terms": {"field": "url.path", "size": 5}}}
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        denied = b["denied"]["doc_count"]
        if b["doc_count"] < rule["min_requests"] or denied < rule["min_denied"]:
            continue
        first, last = _span(b)
        consoles = sorted({p["key"].split(";")[0].split("?")[0] for p in b["consoles"]["buckets"]})
        target = next((p for p in rule["path_prefixes"] if any(c.lower().startswith(p.lower()) for c in consoles)), "")
        out.append(Finding(JOB, "admin_console_bruteforce", severity_for(rule, b["doc_count"]), b["key"]["source"],
                           target, b["doc_count"], window, counts={"requests": b["doc_count"], "denied": denied},
                           first_seen=first, last_seen=last, evidence_ids=evidence_ids(b["denied"]),
                           details={"paths": consoles, "users": [u["key"] for u in b["users"]["buckets"]]},
                           message=f"{b['doc_count']} requests to admin consoles ({denied} denied) from "
                                   f"{b['key']['source']}"))
    return out


def scanner_paths(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["scanner_paths"]
    # url.path for the path itself, url.original for patterns hidden in a query string.
    patterns = {"bool": {"should": [{"wildcard": {f: {"value": p, "case_insensitive": True}}}
                                    for p in rule["patterns"] for f in ("url.path", "url.original")]}}
    query = base_query(window, rules["web_datasets"], patterns, {"exists": {"field": "source.ip"}})
    aggs = {**_SPAN, "paths": {"terms": {"field": "url.path", "size": 5}},
            "statuses": {"terms": {"field": "http.response.status_code", "size": 5}}, "evidence": evidence_agg()}
    out = []
    for b in composite_buckets(es, index, query, _BY_SOURCE, aggs):
        if b["doc_count"] < rule["min_requests"]:
            continue
        first, last = _span(b)
        out.append(Finding(JOB, "scanner_paths", severity_for(rule, b["doc_count"]), b["key"]["source"], "web",
                           b["doc_count"], window, counts={"requests": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b),
                           details={"paths": {p["key"]: p["doc_count"] for p in b["paths"]["buckets"]},
                                    "statuses": {str(s["key"]): s["doc_count"] for s in b["statuses"]["buckets"]}},
                           message=f"{b['doc_count']} requests for scanner paths from {b['key']['source']}"))
    return out


def password_spray(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["password_spray"]
    query = base_query(window, ["windows.security"], {"terms": {"event.code": rule["event_codes"]}},
                       {"term": {"event.outcome": "failure"}}, {"exists": {"field": "source.ip"}})
    return _many_users_per_source(
        es, index, window, query, "password_spray", rule,
        lambda b, users: ({"event_codes": {c["key"]: c["doc_count"] for c in b["codes"]["buckets"]}},
                          f"{users} Windows accounts failed from {b['key']['source']}: password spray"),
        extra_aggs={"codes": {"terms": {"field": "event.code", "size": 5}}})


RULES = [brute_force, invalid_user_probe, success_after_failures, outside_allowlist, privileged_offhours,
         web_auth_flood, admin_console_bruteforce, scanner_paths, password_spray]


def run(es, prefix: str, window: Window, rules: dict) -> list[Finding]:
    cfg = rules[JOB]
    index = logs_index(prefix, sorted(set(auth_datasets(cfg)) | set(cfg["web_datasets"])))
    # privileged_offhours looks at any dataset (sudo lives in the system auth log).
    wide = f"{prefix}-logs-*"
    findings: list[Finding] = []
    for rule_fn in RULES:
        findings.extend(rule_fn(es, wide if rule_fn is privileged_offhours else index, window, cfg))
    return findings
