"""Report calendar: UTC lake days vs report-local days, spans replaced per grain, hourly periods."""

import datetime as dt

import pytest

from etl.errors import ConfigError
from etl.extracts.periods import (day_range, periods, report_day_window, report_days_touched, span_of,
                                  spans)
from etl.window import UTC, Window


def test_a_utc_day_touches_two_shanghai_days():
    assert report_days_touched(Window.day("2026-11-24"), "Asia/Shanghai") == [dt.date(2026, 11, 24),
                                                                              dt.date(2026, 11, 25)]
    assert report_days_touched(Window.day("2026-11-24"), "UTC") == [dt.date(2026, 11, 24)]


def test_report_day_window_is_local_midnight_in_utc():
    w = report_day_window(dt.date(2026, 11, 24), "Asia/Shanghai")
    assert w.start == dt.datetime(2026, 11, 23, 16, tzinfo=UTC)
    assert w.end == dt.datetime(2026, 11, 24, 16, tzinfo=UTC)


@pytest.mark.parametrize("day, grain, expected", [
    ("2026-11-25", "day", ("2026-11-25", "2026-11-26")),
    ("2026-11-25", "hour", ("2026-11-25", "2026-11-26")),
    ("2026-11-25", "week", ("2026-11-23", "2026-11-30")),   # ISO week, Monday first
    ("2026-11-29", "week", ("2026-11-23", "2026-11-30")),   # Sunday belongs to the week before
    ("2026-12-31", "month", ("2026-12-01", "2027-01-01")),
    ("2026-02-10", "month", ("2026-02-01", "2026-03-01")),
])
def test_span_of(day, grain, expected):
    assert span_of(dt.date.fromisoformat(day), grain) == tuple(dt.date.fromisoformat(d) for d in expected)


def test_spans_deduplicate_days_in_one_week():
    days = day_range(dt.date(2026, 11, 23), dt.date(2026, 12, 2))
    assert spans(days, "week") == [(dt.date(2026, 11, 23), dt.date(2026, 11, 30)),
                                   (dt.date(2026, 11, 30), dt.date(2026, 12, 7))]
    assert len(spans(days, "day")) == 9


def test_hourly_periods_carry_local_hour_and_follow_dst():
    shanghai = periods((dt.date(2026, 11, 24), dt.date(2026, 11, 25)), "hour", "Asia/Shanghai")
    assert len(shanghai) == 24
    assert shanghai[0].local_hour == 0 and shanghai[0].start_utc == dt.datetime(2026, 11, 23, 16, tzinfo=UTC)
    assert shanghai[-1].local_hour == 23
    # Berlin springs forward on 2026-03-29: that local day has 23 hours, none of them doubled or lost.
    berlin = periods((dt.date(2026, 3, 29), dt.date(2026, 3, 30)), "hour", "Europe/Berlin")
    assert len(berlin) == 23
    assert [p.local_hour for p in berlin][:4] == [0, 1, 3, 4]


def test_week_period_is_the_whole_span():
    (p,) = periods((dt.date(2026, 11, 23), dt.date(2026, 11, 30)), "week", "Asia/Shanghai")
    assert p.date_key == dt.date(2026, 11, 23)
    assert p.end_utc - p.start_utc == dt.timedelta(days=7)


def test_bad_time_zone_and_ranges():
    with pytest.raises(ConfigError, match="MONETL_REPORT_TZ='Mars/Olympus'"):
        report_day_window(dt.date(2026, 1, 1), "Mars/Olympus")
    with pytest.raises(ConfigError, match="empty day range"):
        day_range(dt.date(2026, 1, 2), dt.date(2026, 1, 2))
