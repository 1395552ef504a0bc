import datetime as dt

from etl.logs.jobs.common import load_rules
from etl.logs.jobs.trade_perf import metric_row, window_findings
from etl.window import UTC, Window

W = Window.parse("2026-11-20T01:30Z", "2026-11-20T01:35Z")


def bucket(minute, volume, ok, sat, tol, breaches, p99_ns):
    return {"key": {"minute": minute * 1000}, "doc_count": volume, "ok": {"doc_count": ok},
            "latency": {"values": {"50.0": 1e6, "95.0": 5e6, "99.0": p99_ns}},
            "apdex": {"buckets": {"satisfied": {"doc_count": sat}, "tolerating": {"doc_count": tol}}},
            "breach": {"doc_count": breaches, "evidence": {"hits": {"hits": [{"_index": "i", "_id": "x"}]}}}}


def test_metric_row_apdex_and_rates():
    dims = {"trade.branch": "B01", "trade.channel": "APP"}
    row = metric_row(W, "trade.gateway", "NEW_ORDER", dims, bucket(W.start_s, 100, 90, 60, 30, 5, 2e8),
                     100, 200)
    assert row["apdex"] == (60 + 30 / 2) / 100
    assert row["success_rate"] == 0.9
    assert (row["branch"], row["channel"], row["rule"]) == ("B01", "APP", "minute_metrics")
    assert row["p99_ms"] == 200.0
    assert row["bucket"] == dt.datetime(2026, 11, 20, 1, 30, tzinfo=UTC)


def test_window_findings_flag_breach_rate_and_success():
    cfg = load_rules()["trade_perf"]
    rows = [metric_row(W, "trade.gateway", "NEW_ORDER", {}, bucket(W.start_s + 60 * i, 50, 40, 20, 10, 10, 3e8),
                       cfg["apdex_t_ms"], 100) for i in range(3)]
    rows += [metric_row(W, "trade.gateway", "QUERY", {}, bucket(W.start_s, 50, 50, 50, 0, 0, 1e6),
                        cfg["apdex_t_ms"], 200)]
    found = {(f.rule, f.target): f for f in window_findings(rows, W, cfg, cfg["min_volume_for_findings"])}
    assert ("sla_breach_rate", "NEW_ORDER") in found
    assert found[("sla_breach_rate", "NEW_ORDER")].count == 30
    assert found[("sla_breach_rate", "NEW_ORDER")].severity == "high"  # 20% of requests over SLA
    assert ("low_success_rate", "NEW_ORDER") in found
    assert not any(target == "QUERY" for _, target in found)
