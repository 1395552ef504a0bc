import datetime as dt

from etl.logs import findings as store
from etl.logs.jobs.common import Finding, Findings
from etl.window import UTC, Window

W1 = Window.parse("2017-03-30T15:45Z", "2017-03-30T16:00Z")
W2 = Window.parse("2017-03-30T16:00Z", "2017-03-30T16:15Z")


def finding(window, count, severity, first, last, evidence):
    return Finding("illegal_access", "brute_force", severity, "1.2.3.4", "h", count, window,
                   counts={"failures": count}, first_seen=first, last_seen=last, evidence_ids=evidence)


def test_merge_keeps_one_count_per_window_and_worst_severity():
    a = finding(W1, 10, "high", dt.datetime(2017, 3, 30, 15, 50, tzinfo=UTC),
                dt.datetime(2017, 3, 30, 15, 59, tzinfo=UTC), ["i/1"]).to_doc()
    b = finding(W2, 4, "medium", dt.datetime(2017, 3, 30, 16, 1, tzinfo=UTC),
                dt.datetime(2017, 3, 30, 16, 2, tzinfo=UTC), ["i/2"]).to_doc()
    stored = store.merge(None, a, "now1")
    stored = store.merge(stored | {"notified_at": "sent", "notified_channels": ["smtp"]}, b, "now2")
    again = store.merge(stored, b, "now3")  # the same window re-run: no double count
    assert again["count"] == 14 and again["windows_seen"] == 2
    assert again["severity"] == "high"
    assert again["first_seen"].startswith("2017-03-30T15:50") and again["last_seen"].startswith("2017-03-30T16:02")
    assert again["evidence_ids"] == ["i/1", "i/2"]
    assert again["notified_channels"] == ["smtp"] and again["first_detected_at"] == "now1"


def test_lake_table_has_contract_columns_for_findings_and_metric_rows():
    f = finding(W1, 10, "high", None, None, ["i/1"])
    metric = {"job": "trade_perf", "rule": "minute_metrics", "source": "trade.gateway", "target": "QUOTE",
              "branch": "B1", "channel": "APP", "bucket": W1.start, "volume": 5, "success": 5, "success_rate": 1.0,
              "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "sla_ms": 50.0, "sla_breaches": 0, "apdex_t_ms": 20.0,
              "satisfied": 5, "tolerating": 0, "apdex": 1.0, "window_start": W1.start, "window_end": W1.end,
              "_evidence": []}
    table = store.table(Findings("illegal_access", W1, [f], metrics=[metric]))
    assert table.schema == store.lake_schema()
    assert table.num_rows == 2
    assert table.column("fingerprint").to_pylist() == [f.fingerprint, None]
    assert table.column("volume").to_pylist() == [None, 5]


def test_a_rerun_supersedes_its_own_and_contained_windows_and_minutes():
    day = Window.parse("2017-03-30T00:00Z", "2017-03-31T00:00Z")
    rows = store.table(Findings("trade_perf", W1, [finding(W1, 1, "high", None, None, [])], metrics=[
        {"job": "trade_perf", "rule": "minute_metrics", "source": "trade.gateway", "target": "QUOTE",
         "bucket": W1.start, "volume": 1, "window_start": W1.start, "window_end": W1.end, "_evidence": []}]))
    day_rows = store.table(Findings("trade_perf", day, [], metrics=[
        {"job": "trade_perf", "rule": "minute_metrics", "source": "trade.gateway", "target": "QUOTE",
         "bucket": W2.start, "volume": 9, "window_start": day.start, "window_end": day.end, "_evidence": []},
        {"job": "trade_perf", "rule": "window_metrics", "source": "trade.gateway", "target": "QUOTE",
         "bucket": day.start, "volume": 9, "window_start": day.start, "window_end": day.end, "_evidence": []}]))
    import pyarrow as pa

    existing = pa.concat_tables([rows, day_rows])
    # Re-running W2 replaces only the day run's minute row inside W2.
    assert store.superseded(existing, W2).to_pylist() == [False, False, True, False]
    # Re-running W1 replaces W1's own rows.
    assert store.superseded(existing, W1).to_pylist() == [True, True, False, False]
    # Re-running the whole day replaces everything.
    assert store.superseded(existing, day).to_pylist() == [True, True, True, True]
