import datetime as dt

import pytest

from etl.errors import ConfigError
from etl.logs.jobs.common import (Finding, composite_buckets, fingerprint, load_rules, logs_index, severity_for)
from etl.window import Window


def test_logs_index_follows_contract():
    assert logs_index("p", ["apache.access", "sshd"]) == "p-logs-apache-access-*,p-logs-sshd-*"


def test_fingerprint_is_deterministic_and_per_day():
    day = dt.date(2017, 3, 30)
    a = fingerprint("illegal_access", "brute_force", "1.2.3.4", "host", day)
    assert a == fingerprint("illegal_access", "brute_force", "1.2.3.4", "host", day)
    assert a != fingerprint("illegal_access", "brute_force", "1.2.3.4", "host", day + dt.timedelta(days=1))
    assert a != fingerprint("illegal_access", "brute_force", "1.2.3.5", "host", day)
    # Two windows of the same UTC day give the same fingerprint: one document, one notification.
    w1 = Window.parse("2017-03-30T15:45Z", "2017-03-30T16:00Z")
    w2 = Window.parse("2017-03-30T16:00Z", "2017-03-30T16:15Z")
    f1 = Finding("illegal_access", "brute_force", "high", "1.2.3.4", "h", 10, w1)
    f2 = Finding("illegal_access", "brute_force", "high", "1.2.3.4", "h", 3, w2)
    assert f1.fingerprint == f2.fingerprint


def test_severity_escalates_at_threshold():
    rule = {"severity": "medium", "escalate": {"at": 50, "severity": "high"}}
    assert severity_for(rule, 49) == "medium"
    assert severity_for(rule, 50) == "high"
    with pytest.raises(ConfigError):
        severity_for({"severity": "urgent"}, 1)


def test_rules_file_severities_are_valid():
    rules = load_rules()

    def walk(node):
        if isinstance(node, dict):
            if "severity" in node:
                severity_for(node, 0)
                severity_for(node, 10**9)
            for value in node.values():
                walk(value)

    walk(rules)
    assert rules["trade_perf"]["apdex_t_ms"] > 0


class PagedES:
    """Answers composite aggregations page by page from a fixed bucket list (a boundary fake)."""

    def __init__(self, buckets, page):
        self.buckets, self.page, self.calls = buckets, page, []

    def search(self, index, size, query, aggs, **kw):
        comp = aggs["groups"]["composite"]
        self.calls.append(comp.get("after"))
        start = 0 if "after" not in comp else [b["key"] for b in self.buckets].index(comp["after"]) + 1
        chunk = self.buckets[start:start + comp["size"]]
        groups = {"buckets": chunk}
        if chunk:
            groups["after_key"] = chunk[-1]["key"]
        return {"aggregations": {"groups": groups}}


def test_composite_paging_walks_every_bucket():
    buckets = [{"key": {"source": f"10.0.0.{i}"}, "doc_count": i} for i in range(7)]
    es = PagedES(buckets, 3)
    seen = list(composite_buckets(es, "i", {}, [], page_size=3))
    assert [b["key"] for b in seen] == [b["key"] for b in buckets]
    assert es.calls == [None, {"source": "10.0.0.2"}, {"source": "10.0.0.5"}]


def test_rules_file_missing_key_is_named(tmp_path):
    import json

    from etl.logs.jobs.common import RULES_FILE

    rules = json.loads(RULES_FILE.read_text())
    del rules["illegal_access"]["brute_force"]
    broken = tmp_path / "rules.json"
    broken.write_text(json.dumps(rules))
    with pytest.raises(ConfigError, match="'illegal_access' lacks brute_force"):
        load_rules(str(broken))
