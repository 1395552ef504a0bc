import datetime as dt

import pytest

from etl.errors import ConfigError
from etl.window import Window, to_utc


def test_naive_input_is_utc_and_offsets_are_converted():
    assert to_utc("2026-11-25T08:00") == dt.datetime(2026, 11, 25, 8, tzinfo=dt.timezone.utc)
    assert to_utc("2026-11-25T08:00+08:00") == dt.datetime(2026, 11, 25, 0, tzinfo=dt.timezone.utc)
    assert to_utc("2026-11-25T08:00Z").hour == 8


def test_window_is_half_open():
    w = Window.parse("2026-11-25T00:00Z", "2026-11-25T01:00Z")
    assert w.contains(w.start)
    assert not w.contains(w.end)
    assert w.end_s - w.start_s == 3600


def test_split_covers_exactly_and_halves_on_whole_seconds():
    w = Window.parse("2026-11-25T00:00Z", "2026-11-25T01:00:01Z")
    parts = list(w.split(dt.timedelta(minutes=25)))
    assert parts[0].start == w.start and parts[-1].end == w.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    left, right = w.halves()
    assert left.end == right.start and left.end.microsecond == 0


def test_empty_or_reversed_window_is_refused():
    with pytest.raises(ConfigError, match="empty window"):
        Window.parse("2026-11-25T01:00Z", "2026-11-25T01:00Z")
    with pytest.raises(ConfigError, match="cannot read"):
        Window.parse("yesterday", "today")


def test_days_touched():
    w = Window.parse("2026-11-24T23:00Z", "2026-11-26T00:00Z")
    assert w.days() == [dt.date(2026, 11, 24), dt.date(2026, 11, 25)]
