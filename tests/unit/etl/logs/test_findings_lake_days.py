"""Lake findings dated by event time: each row in the partition of its first event's UTC day,
one row per fingerprint, re-runs over shifted windows converging (a dict stands in for the lake;
merged_partitions is the pure part of write_lake)."""

import datetime as dt

import pyarrow as pa

from etl.logs import findings as store
from etl.logs.jobs.common import Finding, Findings
from etl.window import UTC, Window

D1 = dt.date(2005, 6, 14)
MIDNIGHT = dt.datetime(2005, 6, 15, tzinfo=UTC)
PROVENANCE = ("window_start", "window_end")


def brute(window, count, first, last, evidence=("i/1",), severity="high", source="203.0.113.50"):
    return Finding("illegal_access", "brute_force", severity, source, "combo", count, window,
                   counts={"failures": count}, first_seen=first, last_seen=last, evidence_ids=list(evidence))


def run(lake: dict, *findings_runs: Findings) -> dict:
    for findings in findings_runs:
        lake.update(store.merged_partitions(findings, lake.get))
    return lake


def rows(lake: dict) -> dict:
    """{day: sorted rows without the run-provenance columns}."""
    out = {}
    for day, table in lake.items():
        got = [{k: v for k, v in r.items() if k not in PROVENANCE} for r in table.to_pylist()]
        if got:
            out[day] = sorted(got, key=lambda r: (r["fingerprint"] or "", str(r["bucket"])))
    return out


def crossing(window):
    return brute(window, 6, MIDNIGHT - dt.timedelta(minutes=3), MIDNIGHT + dt.timedelta(minutes=2, seconds=5))


def test_a_finding_is_filed_under_its_first_events_day_not_the_windows():
    window = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(days=1))  # starts the day after the first event
    lake = run({}, Findings("illegal_access", window, [crossing(window)]))
    assert list(rows(lake)) == [D1]
    assert store.row_day({"fingerprint": "x", "first_seen": MIDNIGHT - dt.timedelta(seconds=1),
                          "window_start": MIDNIGHT}) == D1


def test_windows_starting_on_two_days_give_the_same_rows_and_no_second_row():
    a = Window(MIDNIGHT - dt.timedelta(hours=6), MIDNIGHT + dt.timedelta(hours=18))
    b = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(days=1))
    later = brute(b, 4, MIDNIGHT + dt.timedelta(hours=10), MIDNIGHT + dt.timedelta(hours=10, minutes=1),
                  source="198.51.100.9")
    only_a = rows(run({}, Findings("illegal_access", a, [crossing(a), brute(a, 4, later.first_seen, later.last_seen,
                                                                            source="198.51.100.9")])))
    only_b = rows(run({}, Findings("illegal_access", b, [crossing(b), later])))
    assert only_a == only_b
    assert {d: len(r) for d, r in only_a.items()} == {D1: 1, D1 + dt.timedelta(days=1): 1}
    both = rows(run({}, Findings("illegal_access", a, [crossing(a)]), Findings("illegal_access", b, [crossing(b), later]),
                    Findings("illegal_access", a, [crossing(a)])))
    assert both == only_b


def test_a_grown_span_replaces_the_earlier_row():
    small = Window(MIDNIGHT - dt.timedelta(hours=1), MIDNIGHT + dt.timedelta(minutes=1))
    whole = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(hours=1))
    first = brute(small, 4, MIDNIGHT - dt.timedelta(minutes=3), MIDNIGHT + dt.timedelta(seconds=5), ["i/1"])
    lake = run({}, Findings("illegal_access", small, [first]))
    grown = brute(whole, 6, MIDNIGHT - dt.timedelta(minutes=3), MIDNIGHT + dt.timedelta(minutes=2), ["i/1", "i/9"])
    assert grown.fingerprint == first.fingerprint
    got = rows(run(lake, Findings("illegal_access", whole, [grown])))
    [row] = got[D1]
    assert row["count"] == 6 and row["last_seen"] == grown.last_seen and row["evidence_ids"] == ["i/1", "i/9"]
    # a smaller window re-run afterwards never shrinks the incident
    [again] = rows(run(lake, Findings("illegal_access", small, [first])))[D1]
    assert again["count"] == 6 and again["last_seen"] == grown.last_seen
    assert again["counts_json"] == '{"failures": 6}'


def test_a_row_moves_when_its_first_event_moves_to_the_day_before():
    """With the merged findings-index document (a continuation across midnight keeps the stored
    id), the row follows the incident's earliest first_seen and leaves its old partition."""
    w2 = Window(MIDNIGHT + dt.timedelta(minutes=30), MIDNIGHT + dt.timedelta(hours=1))
    late = brute(w2, 5, MIDNIGHT + dt.timedelta(minutes=31), MIDNIGHT + dt.timedelta(minutes=40))
    lake = run({}, Findings("illegal_access", w2, [late]))
    assert list(rows(lake)) == [D1 + dt.timedelta(days=1)]
    w1 = Window(MIDNIGHT - dt.timedelta(hours=1), MIDNIGHT + dt.timedelta(hours=1))
    early = brute(w1, 9, MIDNIGHT - dt.timedelta(minutes=5), MIDNIGHT + dt.timedelta(minutes=40))
    early.stored_id = late.fingerprint
    early.stored = {"count": 9, "severity": "critical", "first_seen": early.first_seen.isoformat(),
                    "last_seen": early.last_seen.isoformat(), "evidence_ids": ["i/0"], "counts": {}, "details": {},
                    "message": "m"}
    got = rows(run(lake, Findings("illegal_access", w1, [early])))
    assert list(got) == [D1]
    [row] = got[D1]
    assert (row["fingerprint"], row["count"], row["severity"]) == (late.fingerprint, 9, "critical")


def test_metric_rows_by_bucket_day_and_taken_back_by_a_rerun():
    window = Window(MIDNIGHT - dt.timedelta(minutes=2), MIDNIGHT + dt.timedelta(minutes=2))

    def minute(at, volume):
        return {"job": "trade_perf", "rule": "minute_metrics", "source": "trade.gateway", "target": "QUOTE",
                "bucket": at, "volume": volume, "window_start": window.start, "window_end": window.end,
                "_evidence": []}

    metrics = [minute(window.start + dt.timedelta(minutes=i), 10 + i) for i in range(4)]
    lake = run({}, Findings("trade_perf", window, [], metrics=metrics))
    assert {d: len(r) for d, r in rows(lake).items()} == {D1: 2, D1 + dt.timedelta(days=1): 2}
    run(lake, Findings("trade_perf", window, [], metrics=metrics))
    assert {d: len(r) for d, r in rows(lake).items()} == {D1: 2, D1 + dt.timedelta(days=1): 2}
    # a re-run finding nothing takes back what the window had written
    run(lake, Findings("trade_perf", window, []))
    assert rows(lake) == {}


def test_other_fingerprints_and_other_windows_rows_are_kept():
    a = Window(MIDNIGHT + dt.timedelta(hours=1), MIDNIGHT + dt.timedelta(hours=2))
    b = Window(MIDNIGHT + dt.timedelta(hours=2), MIDNIGHT + dt.timedelta(hours=3))
    one = brute(a, 5, a.start + dt.timedelta(minutes=1), a.start + dt.timedelta(minutes=2), source="192.0.2.1")
    two = brute(b, 5, b.start + dt.timedelta(minutes=1), b.start + dt.timedelta(minutes=2), source="192.0.2.2")
    lake = run({}, Findings("illegal_access", a, [one]), Findings("illegal_access", b, [two]))
    got = rows(lake)[D1 + dt.timedelta(days=1)]
    assert sorted(r["source"] for r in got) == ["192.0.2.1", "192.0.2.2"]
    assert isinstance(lake[D1 + dt.timedelta(days=1)], pa.Table)


def test_the_description_comes_from_the_run_that_saw_the_most_events():
    """A smaller window re-run after a larger one keeps the larger run's counts and message (in
    the findings index, and so in the lake row), whatever the order."""
    def doc(window, n):
        f = brute(window, n, MIDNIGHT - dt.timedelta(minutes=4), MIDNIGHT + dt.timedelta(minutes=n - 5))
        f.counts, f.message = {"failures": n}, f"{n} failed logins"
        f.minutes = {(MIDNIGHT + dt.timedelta(minutes=i - 4)).strftime("%Y-%m-%dT%H:%MZ"): 1 for i in range(n)}
        f.covered = window
        return f.to_doc()

    big = doc(Window(MIDNIGHT - dt.timedelta(hours=1), MIDNIGHT + dt.timedelta(hours=1)), 8)
    small = doc(Window(MIDNIGHT - dt.timedelta(hours=1), MIDNIGHT + dt.timedelta(seconds=30)), 5)
    for order in ([small, big, small], [big, small], [small, big]):
        stored = None
        for d in order:
            stored = store.merge(stored, d, "now")
        assert (stored["count"], stored["counts"], stored["message"]) == (8, {"failures": 8}, "8 failed logins")
