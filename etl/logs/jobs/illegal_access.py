"""illegal_access: brute force, invalid-user probing, success after failures, logins from outside
the allowlist, privileged logins outside business hours, web 401/403 floods, admin-console brute
force, scanner paths, Windows password spraying, ftpd connection floods, distributed (low and
slow) guessing. One composite aggregation per rule; thresholds in schemas/logs/rules.json.

A source is source.ip, or source.domain when the log names a host instead (PAM `rhost=`): every
per-source rule groups IPs in one pass and address-less host names in a second. Rules with a
time span (`within_minutes`, `lookback_minutes`) read that much before the window, and keep a
finding only when its last event is inside the window (common.attributed)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from etl.logs.jobs.common import (
    Finding, attributed, base_query, composite_buckets, evidence_agg, evidence_ids, logs_index, look_back,
    minute_counts, minutes_agg, ms_to_dt, rule_span, search, severity_for, window_range,
)
from etl.window import Window

JOB = "illegal_access"
_BY_SOURCE = [{"source": {"terms": {"field": "source.ip"}}}]
_SPAN = {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}}


_NAMED_ONLY = {"bool": {"filter": [{"exists": {"field": "source.domain"}}],
                        "must_not": [{"exists": {"field": "source.ip"}}]}}


def by_source(es, index: str, query: dict, aggs: dict, extra_sources: list | None = None, page_size: int = 500,
              named: bool = True):
    """Composite buckets keyed `source`: first by source.ip, then (when `named`: the window has
    such events at all, see run) by source.domain for events that have a host name and no IP
    (old PAM `rhost=host`, web logs with HostnameLookups on)."""
    extra = list(extra_sources or [])
    ip = {"bool": {"filter": [query, {"exists": {"field": "source.ip"}}]}}
    yield from composite_buckets(es, index, ip, _BY_SOURCE + extra, aggs, page_size)
    if not named:
        return
    by_name = {"bool": {"filter": [query, {"exists": {"field": "source.domain"}}],
                        "must_not": [{"exists": {"field": "source.ip"}}]}}
    yield from composite_buckets(es, index, by_name, [{"source": {"terms": {"field": "source.domain"}}}] + extra,
                                 aggs, page_size)


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


def _burst(es, index: str, window: Window, rule_name: str, rule: dict, events: dict, n: int, what: str,
           named: bool = True) -> list[Finding]:
    """Sources with at least n events within rule['within_minutes'] (any T-long stretch aligned to
    half-T steps), reading the window plus that much look-back."""
    minutes = rule["within_minutes"]
    half_ms = minutes * 60_000 // 2
    covered = look_back(window, rule)
    query = base_query(covered, None, events)
    aggs = {**_SPAN, "users": {"cardinality": {"field": "user.name"}},
            "targets": {"terms": {"field": "host.name", "size": 3}},
            "halves": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{half_ms}ms",
                                          "min_doc_count": 1}},
            "minutes": minutes_agg(), "evidence": evidence_agg()}
    out = []
    for b in by_source(es, index, query, aggs, named=named):
        if b["doc_count"] < n:
            continue
        peak = peak_within(b["halves"]["buckets"], half_ms)
        if peak < n:
            continue
        first, last = _span(b)
        out.append(Finding(JOB, rule_name, severity_for(rule, peak), b["key"]["source"], _targets(b),
                           b["doc_count"], window,
                           counts={what: b["doc_count"], f"peak_in_{minutes}m": peak,
                                   "distinct_users": b["users"]["value"]},
                           first_seen=first, last_seen=last, evidence_ids=evidence_ids(b),
                           minutes=minute_counts(b), covered=covered, span=rule_span(rule),
                           message=f"{peak} {what.replace('_', ' ')} within {minutes} min from {b['key']['source']}"))
    return out


def brute_force(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["brute_force"]
    out = _burst(es, index, window, "brute_force", rule, failures(rules), rule["min_failures"], "failures",
                 rules.get("_named_sources", True))
    for f in out:
        peak = f.counts[f"peak_in_{rule['within_minutes']}m"]
        f.message = f"{peak} failed logins within {rule['within_minutes']} min from {f.source}"
    return out


def ftp_connection_flood(es, index: str, window: Window, rules: dict) -> list[Finding]:
    """Many ftpd `connection from` lines from one source: the scan/guessing pattern of old FTP
    daemons, which log no per-attempt failure."""
    rule = rules["ftp_connection_flood"]
    events = {"terms": {"event.action": rule["actions"]}}
    return _burst(es, index, window, "ftp_connection_flood", rule, events, rule["min_connections"], "connections",
                  rules.get("_named_sources", True))


def distributed_guessing(es, index: str, window: Window, rules: dict) -> list[Finding]:
    """Slow distributed guessing: the same user (or service) failed from many sources, each with
    only a few tries, so no single source reaches the brute-force threshold."""
    rule = rules["distributed_guessing"]
    covered = look_back(window, rule)
    query = {"bool": {"filter": [base_query(covered, None, failures(rules)),
                                 {"bool": {"should": [{"exists": {"field": "source.ip"}},
                                                      {"exists": {"field": "source.domain"}}]}}]}}
    per_source = rule["max_failures_per_source"]
    aggs = {**_SPAN, "ips": {"terms": {"field": "source.ip", "size": rule["max_sources_listed"]}},
            "named": {"filter": {"bool": {"must_not": [{"exists": {"field": "source.ip"}}]}},
                      "aggs": {"hosts": {"terms": {"field": "source.domain", "size": rule["max_sources_listed"]}}}},
            "n_ips": {"cardinality": {"field": "source.ip"}},
            "minutes": minutes_agg(), "evidence": evidence_agg()}
    out = []
    for fields in rule["group_by"]:
        sources = [{f"g{i}": {"terms": {"field": name}}} for i, name in enumerate(fields)]
        for b in composite_buckets(es, index, query, sources, aggs, page_size=100):
            tries = [x["doc_count"] for x in b["ips"]["buckets"]] + \
                    [x["doc_count"] for x in b["named"]["hosts"]["buckets"]]
            low = [n for n in tries if n <= per_source]
            if len(low) < rule["min_sources"]:
                continue
            first, last = _span(b)
            target = ",".join(f"{name}={b['key'][f'g{i}']}" for i, name in enumerate(fields))
            out.append(Finding(JOB, "distributed_guessing", severity_for(rule, len(low)), "(distributed)", target,
                               b["doc_count"], window,
                               counts={"failures": b["doc_count"], "sources": len(tries),
                                       "sources_with_few_tries": len(low), "distinct_ips": b["n_ips"]["value"]},
                               first_seen=first, last_seen=last, evidence_ids=evidence_ids(b),
                               details={"sources": [x["key"] for x in b["ips"]["buckets"]][:20]
                                        + [x["key"] for x in b["named"]["hosts"]["buckets"]][:20],
                                        "max_failures_per_source": per_source},
                               minutes=minute_counts(b), covered=covered, span=rule_span(rule),
                               message=f"{b['doc_count']} failures for {target} from {len(low)} sources with at "
                                       f"most {per_source} tries each: distributed guessing"))
    return out


def _many_users_per_source(es, index: str, window: Window, query: dict, rule_name: str, rule: dict,
                           describe, extra_aggs: dict | None = None, named: bool = True) -> list[Finding]:
    """Sources that failed as at least rule["min_distinct_users"] distinct user names: the one
    detector behind invalid-user probing and password spraying. `describe(bucket, users)` gives the
    rule's extra details and its message."""
    aggs = {**_SPAN, "users": {"cardinality": {"field": "user.name"}},
            "sample_users": {"terms": {"field": "user.name", "size": 10}},
            "targets": {"terms": {"field": "host.name", "size": 3}}, "evidence": evidence_agg(),
            **(extra_aggs or {})}
    out = []
    for b in by_source(es, index, query, aggs, named=named):
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
                       {"exists": {"field": "user.name"}})
    return _many_users_per_source(
        es, index, window, query, "invalid_user_probe", rule,
        lambda b, users: ({}, f"{users} user names tried from {b['key']['source']}"),
        named=rules.get("_named_sources", True))


def success_after_failures(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["success_after_failures"]
    lookback = window.widened(before=dt.timedelta(minutes=rule["lookback_minutes"]))
    failed, succeeded = failures(rules), successes(rules)
    query = base_query(lookback, None, {"bool": {"should": [failed, succeeded]}})
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
    for b in by_source(es, index, query, aggs, named=rules.get("_named_sources", True)):
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
    aggs = {**_SPAN, "evidence": evidence_agg(2), "minutes": minutes_agg()}
    out = []
    for b in composite_buckets(es, index, query, sources, aggs):
        first, last = _span(b)
        user = b["key"]["user"] or ""
        out.append(Finding(JOB, "outside_allowlist", severity_for(rule, b["doc_count"]), b["key"]["source"], user,
                           b["doc_count"], window, counts={"logins": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b), minutes=minute_counts(b),
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
    query = base_query(window, rules["web_datasets"], {"terms": {"http.response.status_code": rule["statuses"]}})
    aggs = {**_SPAN, "paths": {"terms": {"field": "url.path", "size": 5}}, "evidence": evidence_agg(),
            "minutes": minutes_agg()}
    out = []
    for b in by_source(es, index, query, aggs, named=rules.get("_named_sources", True)):
        if b["doc_count"] < rule["min_denied"]:
            continue
        first, last = _span(b)
        top = b["paths"]["buckets"][0]["key"] if b["paths"]["buckets"] else ""
        out.append(Finding(JOB, "web_auth_flood", severity_for(rule, b["doc_count"]), b["key"]["source"], top,
                           b["doc_count"], window, counts={"denied": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b), minutes=minute_counts(b),
                           details={"paths": {p["key"]: p["doc_count"] for p in b["paths"]["buckets"]}},
                           message=f"{b['doc_count']} HTTP 401/403 answers to {b['key']['source']}"))
    return out


def admin_console_bruteforce(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["admin_console_bruteforce"]
    prefixes = {"bool": {"should": [{"prefix": {"url.path": {"value": p, "case_insensitive": True}}}
                                    for p in rule["path_prefixes"]]}}
    query = base_query(window, rules["web_datasets"], prefixes)
    aggs = {**_SPAN, "minutes": minutes_agg(),
            "denied": {"filter": {"terms": {"http.response.status_code": rule["denied_statuses"]}},
                       "aggs": {"evidence": evidence_agg(3)}},
            "users": {"terms": {"field": "user.name", "size": 5}},
            "consoles": {"terms": {"field": "url.path", "size": 5}}}
    out = []
    for b in by_source(es, index, query, aggs, named=rules.get("_named_sources", True)):
        denied = b["denied"]["doc_count"]
        if b["doc_count"] < rule["min_requests"] or denied < rule["min_denied"]:
            continue
        first, last = _span(b)
        consoles = sorted({p["key"].split(";")[0].split("?")[0] for p in b["consoles"]["buckets"]})
        target = next((p for p in rule["path_prefixes"] if any(c.lower().startswith(p.lower()) for c in consoles)), "")
        out.append(Finding(JOB, "admin_console_bruteforce", severity_for(rule, b["doc_count"]), b["key"]["source"],
                           target, b["doc_count"], window, counts={"requests": b["doc_count"], "denied": denied},
                           first_seen=first, last_seen=last, evidence_ids=evidence_ids(b["denied"]),
                           minutes=minute_counts(b),
                           details={"paths": consoles, "users": [u["key"] for u in b["users"]["buckets"]]},
                           message=f"{b['doc_count']} requests to admin consoles ({denied} denied) from "
                                   f"{b['key']['source']}"))
    return out


def scanner_paths(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["scanner_paths"]
    # url.path for the path itself, url.original for patterns hidden in a query string.
    patterns = {"bool": {"should": [{"wildcard": {f: {"value": p, "case_insensitive": True}}}
                                    for p in rule["patterns"] for f in ("url.path", "url.original")]}}
    query = base_query(window, rules["web_datasets"], patterns)
    aggs = {**_SPAN, "paths": {"terms": {"field": "url.path", "size": 5}}, "minutes": minutes_agg(),
            "statuses": {"terms": {"field": "http.response.status_code", "size": 5}}, "evidence": evidence_agg()}
    out = []
    for b in by_source(es, index, query, aggs, named=rules.get("_named_sources", True)):
        if b["doc_count"] < rule["min_requests"]:
            continue
        first, last = _span(b)
        out.append(Finding(JOB, "scanner_paths", severity_for(rule, b["doc_count"]), b["key"]["source"], "web",
                           b["doc_count"], window, counts={"requests": b["doc_count"]}, first_seen=first,
                           last_seen=last, evidence_ids=evidence_ids(b), minutes=minute_counts(b),
                           details={"paths": {p["key"]: p["doc_count"] for p in b["paths"]["buckets"]},
                                    "statuses": {str(s["key"]): s["doc_count"] for s in b["statuses"]["buckets"]}},
                           message=f"{b['doc_count']} requests for scanner paths from {b['key']['source']}"))
    return out


def password_spray(es, index: str, window: Window, rules: dict) -> list[Finding]:
    rule = rules["password_spray"]
    query = base_query(window, ["windows.security"], {"terms": {"event.code": rule["event_codes"]}},
                       {"term": {"event.outcome": "failure"}})
    return _many_users_per_source(
        es, index, window, query, "password_spray", rule,
        lambda b, users: ({"event_codes": {c["key"]: c["doc_count"] for c in b["codes"]["buckets"]}},
                          f"{users} Windows accounts failed from {b['key']['source']}: password spray"),
        extra_aggs={"codes": {"terms": {"field": "event.code", "size": 5}}}, named=rules.get("_named_sources", True))


RULES = [brute_force, invalid_user_probe, success_after_failures, outside_allowlist, privileged_offhours,
         web_auth_flood, admin_console_bruteforce, scanner_paths, password_spray, ftp_connection_flood,
         distributed_guessing]


def max_span(cfg: dict) -> int:
    """Longest look-back of any rule, in minutes."""
    return max([int(r.get("within_minutes") or r.get("lookback_minutes") or 0)
                for r in cfg.values() if isinstance(r, dict)] or [0])


def run(es, prefix: str, window: Window, rules: dict) -> list[Finding]:
    cfg = rules[JOB]
    index = logs_index(prefix, sorted(set(auth_datasets(cfg)) | set(cfg["web_datasets"])))
    # privileged_offhours looks at any dataset (sudo lives in the system auth log).
    wide = f"{prefix}-logs-*"
    findings: list[Finding] = []
    # One question spares every per-source rule its second (host-name) pass in the usual case.
    probe = search(es, index, base_query(look_back(window, {"lookback_minutes": max_span(cfg)}), None, _NAMED_ONLY),
                   {"named": {"value_count": {"field": "@timestamp"}}})
    named = bool(probe.get("aggregations", {}).get("named", {}).get("value"))
    cfg = cfg | {"_named_sources": named}
    for rule_fn in RULES:
        found = rule_fn(es, wide if rule_fn is privileged_offhours else index, window, cfg)
        findings.extend(f for f in found if attributed(f, window))
    return findings
