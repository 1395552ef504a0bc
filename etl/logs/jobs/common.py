"""What the three log jobs share: the Finding record and its fingerprint, the rules file, index
names per the log-document contract, window filters, and composite-aggregation paging.

Every job asks Elasticsearch for aggregations only; the only documents that come back are a few
evidence ids per finding (top_hits with _source off)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from etl.errors import ConfigError, StoreError
from etl.search.composite import composite_buckets as composite_pages
from etl.window import UTC, Window

RULES_FILE = Path(__file__).resolve().parents[3] / "schemas" / "logs" / "rules.json"
SEVERITIES = ("low", "medium", "high", "critical")
NS_PER_MS = 1_000_000
# Options on every search: a dataset with no index yet is "no data", not an error.
SEARCH_OPTIONS = {"ignore_unavailable": True, "allow_no_indices": True}


# What each job reads from rules.json: a missing key is named when the file is loaded, not as
# a KeyError halfway through a run.
REQUIRED_RULES = {
    "illegal_access": ["web_datasets", "login_failure_actions", "login_success_actions", "probe_extra_actions",
                       "brute_force", "invalid_user_probe", "success_after_failures", "outside_allowlist",
                       "privileged_offhours", "web_auth_flood", "admin_console_bruteforce", "scanner_paths",
                       "password_spray", "ftp_connection_flood", "distributed_guessing"],
    "mail_failures": ["datasets", "failure_statuses", "spike", "domain_failures", "sender_failures", "top_reasons",
                      "top_rows", "queue_storage"],
    "trade_perf": ["trade_dataset", "apdex_t_ms", "sla_ms", "minute_dimensions", "window_dimensions",
                   "min_volume_for_findings", "sla_breach_rate", "success_rate", "apdex", "web"],
}


@functools.lru_cache(maxsize=4)
def load_rules(path: str | None = None) -> dict:
    file = Path(path) if path else RULES_FILE
    try:
        rules = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read log-job rules {file}: {exc}") from exc
    for job, keys in REQUIRED_RULES.items():
        missing = [k for k in keys if k not in rules.get(job, {})]
        if missing:
            raise ConfigError(f"{file}: section {job!r} lacks {', '.join(missing)}")
    if "default" not in rules["trade_perf"]["sla_ms"]:
        raise ConfigError(f"{file}: trade_perf.sla_ms needs a 'default' for trade types it does not name")
    return rules


def logs_index(prefix: str, datasets) -> str:
    """Index pattern(s) of the given event.dataset values: {prefix}-logs-{dataset, dots->dashes}-*."""
    return ",".join(f"{prefix}-logs-{ds.replace('.', '-')}-*" for ds in datasets)


def findings_index(prefix: str) -> str:
    return f"{prefix}-findings"


def window_range(window: Window, field_name: str = "@timestamp") -> dict:
    return {"range": {field_name: {"gte": window.start.isoformat(), "lt": window.end.isoformat(),
                                   "format": "strict_date_optional_time"}}}


def base_query(window: Window, datasets=None, *filters: dict, must_not: list | None = None) -> dict:
    clauses = [window_range(window)]
    if datasets:
        clauses.append({"terms": {"event.dataset": list(datasets)}})
    clauses.extend(filters)
    query: dict = {"bool": {"filter": clauses}}
    if must_not:
        query["bool"]["must_not"] = must_not
    return query


def evidence_agg(size: int = 3) -> dict:
    """A few evidence ids per bucket, earliest first, no document bodies."""
    return {"top_hits": {"size": size, "_source": False, "sort": [{"@timestamp": {"order": "asc"}}]}}


def evidence_ids(bucket: dict, name: str = "evidence") -> list[str]:
    hits = bucket.get(name, {}).get("hits", {}).get("hits", [])
    return [f"{h['_index']}/{h['_id']}" for h in hits]


def ms_to_dt(value) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)


def search(es, index: str, query: dict, aggs: dict, **extra) -> dict:
    try:
        return es.search(index=index, size=0, query=query, aggs=aggs, track_total_hits=False,
                         **SEARCH_OPTIONS, **extra)
    except Exception as exc:
        raise StoreError(f"aggregation over {index} failed: {type(exc).__name__}: {exc}") from exc


def composite_buckets(es, index: str, query: dict, sources: list[dict], aggs: dict | None = None,
                      page_size: int = 500) -> Iterator[dict]:
    """Every bucket of a composite aggregation ("groups") over the log index, all pages."""
    return composite_pages(lambda body: search(es, index, query, body), sources, aggs, page_size, name="groups")


def severity_for(rule: dict, count: float) -> str:
    """The rule's severity, escalated once count reaches rule['escalate']['at']."""
    severity = rule.get("severity", "medium")
    escalate = rule.get("escalate")
    if escalate and count >= escalate["at"]:
        severity = escalate["severity"]
    if severity not in SEVERITIES:
        raise ConfigError(f"rules.json: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    return severity


def fingerprint(job: str, rule: str, source: str, target: str, day: dt.date) -> str:
    """Same finding first seen on the same UTC day (event time, not the window's) -> same id, so
    re-runs over any windows update one document and notify once. A finding that continues an
    stored one across midnight keeps the stored id (etl.logs.findings.index_findings)."""
    key = "\x1f".join([job, rule, source or "", target or "", day.isoformat()])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def finding_key(job: str, rule: str, source: str, target: str) -> str:
    """What a finding is about, without its day: stored findings of the same key are candidates
    for continuation."""
    key = "\x1f".join([job, rule, source or "", target or ""])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def rule_span(rule: dict) -> dt.timedelta:
    """The time span a rule's threshold is about (`within_minutes` or `lookback_minutes`): the
    look-back each run adds before its window so a burst split by a window edge is still seen."""
    minutes = rule.get("within_minutes") or rule.get("lookback_minutes") or 0
    return dt.timedelta(minutes=minutes)


def look_back(window: Window, rule: dict) -> Window:
    return window.widened(before=rule_span(rule))


def attributed(finding: "Finding", window: Window) -> bool:
    """A finding belongs to the window that holds its last event: one whose events all lie in the
    look-back part was the previous window's (and was found there), so it is not reported again."""
    return finding.last_seen is None or finding.last_seen >= window.start


def minute_counts(bucket: dict, name: str = "minutes") -> dict[str, int]:
    """{ISO minute: events} of a date_histogram sub-aggregation (see minutes_agg)."""
    return {ms_to_dt(b["key"]).strftime("%Y-%m-%dT%H:%MZ"): int(b["doc_count"])
            for b in bucket.get(name, {}).get("buckets", []) if b["doc_count"]}


def minutes_agg() -> dict:
    """Events per minute of a finding's bucket: stored with the finding so that re-runs over any
    windows (overlapping, larger, shifted) replace the minutes they cover instead of adding up."""
    return {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "min_doc_count": 1}}


@dataclass
class Finding:
    job: str
    rule: str
    severity: str
    source: str
    target: str
    count: int
    window: Window
    counts: dict = field(default_factory=dict)
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    evidence_ids: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    message: str = ""
    # Events per minute (when `count` is an event count): lets re-runs converge, see merge().
    minutes: dict = field(default_factory=dict)
    # The time range whose events this finding was computed from (the window plus look-back).
    covered: Window | None = None
    # Gap within which a stored finding of the same key is the same incident (the rule's span).
    span: dt.timedelta = dt.timedelta(0)
    # Set when the finding continues a stored one of another day (index_findings).
    stored_id: str | None = None
    # The merged findings-index document after index_findings wrote it: the lake row takes the
    # incident's converged first/last seen and count from it (etl.logs.findings.write_lake).
    stored: dict | None = field(default=None, repr=False, compare=False)

    @property
    def day(self) -> dt.date:
        """UTC day of the first event (the window's start only when the rule has no event time)."""
        return (self.first_seen or self.window.start).astimezone(UTC).date()

    @property
    def key(self) -> str:
        return finding_key(self.job, self.rule, self.source, self.target)

    @property
    def fingerprint(self) -> str:
        return self.stored_id or fingerprint(self.job, self.rule, self.source, self.target, self.day)

    def to_doc(self) -> dict:
        return {
            "fingerprint": self.fingerprint, "job": self.job, "rule": self.rule, "severity": self.severity,
            "source": self.source, "target": self.target, "count": int(self.count), "counts": self.counts,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "evidence_ids": list(self.evidence_ids), "details": self.details, "message": self.message,
            "day": self.day.isoformat(), "key": self.key,
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "minute_counts": dict(self.minutes),
            "covered": {"start": (self.covered or self.window).start.isoformat(),
                        "end": (self.covered or self.window).end.isoformat()},
        }


@dataclass
class Findings:
    """What one job run over one window produced."""
    job: str
    window: Window
    findings: list[Finding] = field(default_factory=list)
    # Per-minute metric rows (trade_perf) in the lake's findings-table columns.
    metrics: list[dict] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    # Job-level numbers (mail totals, trade volumes) for JSON output and checks.
    stats: dict = field(default_factory=dict)

    def by_severity(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def xcom_summary(self, min_severity: str = "high") -> dict:
        """Small enough for XCom: counts and the fingerprints worth notifying."""
        floor = SEVERITIES.index(min_severity)
        return {"job": self.job, "window": [self.window.start.isoformat(), self.window.end.isoformat()],
                "findings": len(self.findings), "by_severity": self.by_severity(), "metric_rows": len(self.metrics),
                "notify": sorted({f.fingerprint for f in self.findings if SEVERITIES.index(f.severity) >= floor})}

    def to_json(self) -> dict:
        return {"job": self.job, "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
                "findings": [f.to_doc() for f in self.findings], "metrics_rows": len(self.metrics),
                "summary": self.summary, "stats": self.stats}
