"""Validation: each bad case gets its own reason, the good rows pass, GE agrees with the row rules."""

import datetime as dt
import threading

import pytest

from etl import quality
from etl.window import Window

from points_factory import BASE_CLOCK, batch, point, with_invalid_utf8

WINDOW = Window(dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 25, 0, 5, tzinfo=dt.timezone.utc))

BAD_CASES = {
    "text in a numeric item": (point(value_type=0, value=None, value_text="12,5"), "numeric item without a numeric value"),
    "NaN": (point(value=float("nan")), "numeric value not finite (NaN or infinity)"),
    "infinity": (point(value_type=3, value=float("inf")), "numeric value not finite (NaN or infinity)"),
    "negative unsigned": (point(value_type=3, value=-1.0), "unsigned item with a negative value"),
    "unsigned float without exact digits": (point(value_type=3, value=2.0 ** 64),
                                            "unsigned value not exact as uint64 (above 2^64-1, a fraction, or a float "
                                            "above 2^53 without its exact digits)"),
    "1970 clock": (point(clock=0, ns=0), "clock before 2000-01-01 (an unset clock such as 1970)"),
    "3 MB text": (point(value_type=4, value=None, value_text="x" * 3_000_000), "text value longer than 1000000 characters"),
    "out-of-window clock": (point(clock=BASE_CLOCK + 86400 * 3), "clock outside the extraction window"),
    "ns out of range": (point(ns=1_000_000_000), "ns out of range 0..999999999"),
    "text item without text": (point(value_type=1, value=None, value_text=None), "text item without a text value"),
    "unknown value_type": (point(value_type=7), "unknown value_type"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_bad_case_is_flagged_with_its_reason(case):
    bad, reason = BAD_CASES[case]
    rows = [point(itemid=1), bad, point(itemid=3, value_type=4, value=None, value_text="ok")]
    checked = quality.check(batch(rows), WINDOW)
    assert checked.bad_rows == [1]
    assert checked.reasons[1].split(":")[0] == reason
    assert checked.good.num_rows == 2
    assert checked.good.column("itemid").to_pylist() == [1, 3]


def test_invalid_utf8_is_flagged_and_kept_readable():
    clean = batch([point(itemid=1), point(itemid=2, value_type=4, value=None, value_text="placeholder")])
    dirty = with_invalid_utf8(clean, row=1)
    checked = quality.check(dirty, WINDOW, use_ge=True)
    assert checked.bad_rows == [1]
    assert checked.reasons[1].startswith("invalid UTF-8: value_text=")
    record = quality.records(dirty, [1])[0]
    assert record["value_text"] == "bad \\xff\\xfe" and record["itemid"] == 2
    checked.good.validate(full=True)


def test_late_value_within_allowance_passes_but_not_beyond():
    allowance = quality.suite_spec()["meta"]["parameters"]["late_allowance_s"]
    rows = [point(clock=WINDOW.start_s - allowance), point(clock=WINDOW.start_s - allowance - 1)]
    assert quality.row_failures(batch(rows), WINDOW).keys() == {1}


def test_window_end_is_exclusive_up_to_the_future_allowance():
    future = quality.suite_spec()["meta"]["parameters"]["future_allowance_s"]
    rows = [point(clock=WINDOW.end_s + future - 1), point(clock=WINDOW.end_s + future)]
    assert quality.row_failures(batch(rows), WINDOW).keys() == {1}


def test_every_value_type_valid_passes():
    rows = [point(value_type=0, value=-3.25), point(value_type=3, value=2.0 ** 64, value_uint=2 ** 64 - 1),
            point(value_type=1, value=None, value_text="up"), point(value_type=2, value=None, value_text="log line"),
            point(value_type=4, value=None, value_text="")]
    checked = quality.check(batch(rows), WINDOW, use_ge=True)
    assert checked.bad_rows == [] and checked.good.num_rows == 5
    assert checked.ge.failed == {}


def test_great_expectations_reports_the_failed_expectations():
    rows = [point(itemid=i) for i in range(20)] + [BAD_CASES["1970 clock"][0], BAD_CASES["text in a numeric item"][0]]
    report = quality.ge_check(batch(rows), WINDOW, sample_rows=0)
    assert report.rows_checked == 22
    assert report.failed["clock before 2000-01-01 (an unset clock such as 1970)"] == 1
    assert report.failed["numeric item without a numeric value"] == 1
    assert report.failed["clock outside the extraction window"] == 1  # the 1970 row is outside too


def test_first_failing_rule_in_file_order_names_the_reason():
    reasons = quality.row_failures(batch([point(clock=0, value=float("nan"))]), WINDOW)
    assert reasons[0].startswith("clock before 2000-01-01")


def test_sampler_runs_ge_on_a_strided_sample_across_batches():
    sampler = quality.GESampler(WINDOW, sample_rows=10, every_rows=100)  # every 10th row
    rows = [point(itemid=i) for i in range(95)]
    rows[40] = point(itemid=40, clock=0)  # on the stride: sampled
    rows[41] = point(itemid=41, clock=0)  # off the stride: only the row rules see it
    whole = batch(rows)
    for start in range(0, 95, 30):  # batch boundaries that do not align with the stride
        part = whole.slice(start, 30)
        sampler.offer(part, quality.check(part, WINDOW).failed)
    report = sampler.finish()
    assert report.rows_checked == 10  # rows 0, 10, ..., 90
    assert report.failed["clock before 2000-01-01 (an unset clock such as 1970)"] == 1


def test_ge_and_row_rules_agree_on_every_failed_expectation(caplog):
    rows = [point(itemid=i) for i in range(10)] + [point(clock=0), point(value_type=3, value=-1.0)]
    checked = quality.check(batch(rows), WINDOW, use_ge=True)
    assert set(checked.ge.failed) == checked.failed == {
        "clock before 2000-01-01 (an unset clock such as 1970)", "clock outside the extraction window",
        "unsigned item with a negative value",
        "unsigned value not exact as uint64 (above 2^64-1, a fraction, or a float above 2^53 without its exact digits)"}
    assert "no row rule flagged" not in caplog.text


def test_sampler_runs_ge_in_its_own_thread_and_totals_every_sample(monkeypatch):
    seen = []

    def fake_ge_check(sample, window, sample_rows=None):
        seen.append((threading.current_thread().name, sample.num_rows))
        return quality.GEReport(rows_checked=sample.num_rows, failed={"x": 1}, seconds=0.01)

    monkeypatch.setattr(quality, "_ge_runtime", lambda: None)
    monkeypatch.setattr(quality, "ge_check", fake_ge_check)
    sampler = quality.GESampler(WINDOW, sample_rows=10, every_rows=100)
    for start in range(0, 250, 50):
        sampler.offer(batch([point(itemid=i) for i in range(start, start + 50)]), set())
    report = sampler.finish()
    assert [rows for _, rows in seen] == [10, 10, 5]  # two full samples, the rest at the end
    assert {name for name, _ in seen} == {"ge-sampler"}
    assert report.rows_checked == 25 and report.failed == {"x": 3}


def test_sampler_raises_a_ge_error_at_finish(monkeypatch):
    def broken(sample, window, sample_rows=None):
        raise RuntimeError("GE broke")

    monkeypatch.setattr(quality, "_ge_runtime", lambda: None)
    monkeypatch.setattr(quality, "ge_check", broken)
    sampler = quality.GESampler(WINDOW, sample_rows=10, every_rows=100)
    sampler.offer(batch([point(itemid=i) for i in range(200)]), set())
    with pytest.raises(RuntimeError, match="GE broke"):
        sampler.finish()
