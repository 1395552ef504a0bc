"""Report calendar: the lake is partitioned by UTC day, reports count in report-local days
(settings.report_tz). A report day D is [local midnight D, local midnight D+1) converted to UTC.

A build "replaces day D" of a fact by replacing the span of its grain that contains D: the day
itself for hour and day grains, the ISO week (Monday first) or the calendar month otherwise, each
recomputed from the lake over the whole span (a weekly p95 cannot be derived from daily ones)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import ConfigError
from etl.window import UTC, Window


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"MONETL_REPORT_TZ={tz!r} is not an IANA time zone (e.g. Asia/Shanghai)") from exc


def local_midnight_utc(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone(tz)).astimezone(UTC)


def report_day_window(day: dt.date, tz: str) -> Window:
    return Window(local_midnight_utc(day, tz), local_midnight_utc(day + dt.timedelta(days=1), tz))


def report_days_touched(window: Window, tz: str) -> list[dt.date]:
    """Report-local days that overlap a UTC window (a compacted UTC day touches two of them east of UTC)."""
    first = window.start.astimezone(zone(tz)).date()
    last = (window.end - dt.timedelta(microseconds=1)).astimezone(zone(tz)).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def span_of(day: dt.date, grain: str) -> tuple[dt.date, dt.date]:
    """[first, end) local dates of the span that a rebuild of `day` replaces for this grain."""
    if grain in ("hour", "day"):
        return day, day + dt.timedelta(days=1)
    if grain == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=7)
    if grain == "month":
        first = day.replace(day=1)
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        return first, nxt
    raise ConfigError(f"unknown grain {grain!r}")


def spans(days: list[dt.date], grain: str) -> list[tuple[dt.date, dt.date]]:
    return sorted({span_of(d, grain) for d in days})


def span_window(span: tuple[dt.date, dt.date], tz: str) -> Window:
    return Window(local_midnight_utc(span[0], tz), local_midnight_utc(span[1], tz))


@dataclass(frozen=True)
class Period:
    """One row-period of a fact: the group of samples a fact row aggregates over."""
    date_key: dt.date
    start_local: dt.datetime  # naive, report time zone
    start_utc: dt.datetime
    end_utc: dt.datetime
    local_hour: int | None = None


def periods(span: tuple[dt.date, dt.date], grain: str, tz: str) -> list[Period]:
    """The periods of one span: 24 hours a day, one per day, or the span itself (week/month)."""
    zi = zone(tz)
    if grain in ("week", "month"):
        w = span_window(span, tz)
        return [Period(span[0], dt.datetime.combine(span[0], dt.time()), w.start, w.end)]
    out = []
    day = span[0]
    while day < span[1]:
        w = report_day_window(day, tz)
        if grain == "day":
            out.append(Period(day, dt.datetime.combine(day, dt.time()), w.start, w.end))
        else:
            # Step in UTC so a DST change gives 23 or 25 hours rather than a missing or doubled one.
            cursor = w.start
            while cursor < w.end:
                local = cursor.astimezone(zi)
                out.append(Period(day, local.replace(tzinfo=None), cursor, cursor + dt.timedelta(hours=1),
                                  local.hour))
                cursor += dt.timedelta(hours=1)
        day += dt.timedelta(days=1)
    return out


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise ConfigError(f"cannot read {text!r} as a day: use YYYY-MM-DD") from exc


def day_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """[start, end) as a list of days; end must be after start."""
    if end <= start:
        raise ConfigError(f"empty day range: end {end} is not after start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]
