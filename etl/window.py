"""The one time-window type: [start, end) in UTC, used by every job, the CLI and the DAGs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from etl.errors import ConfigError

UTC = dt.timezone.utc


def to_utc(value: dt.datetime | dt.date | str | int | float) -> dt.datetime:
    """Normalise a timestamp to an aware UTC datetime. Naive input is taken as UTC, never local time."""
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ConfigError(f"cannot read {value!r} as a time: use ISO 8601, e.g. 2026-11-25T00:00Z") from exc
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ConfigError(f"cannot read {value!r} as a time")


@dataclass(frozen=True, order=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start))
        object.__setattr__(self, "end", to_utc(self.end))
        if self.end <= self.start:
            raise ConfigError(f"empty window: end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def parse(cls, start, end) -> "Window":
        return cls(to_utc(start), to_utc(end))

    @classmethod
    def day(cls, day: dt.date | str) -> "Window":
        first = to_utc(day if not isinstance(day, str) else dt.date.fromisoformat(day))
        return cls(first, first + dt.timedelta(days=1))

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_s(self) -> int:
        """Exclusive end in whole seconds: a point at clock=end_s belongs to the next window."""
        return int(self.end.timestamp())

    @property
    def start_ns(self) -> int:
        return self.start_s * 1_000_000_000 + self.start.microsecond * 1000

    @property
    def end_ns(self) -> int:
        return self.end_s * 1_000_000_000 + self.end.microsecond * 1000

    def contains(self, ts: dt.datetime) -> bool:
        return self.start <= to_utc(ts) < self.end

    def contains_ns(self, epoch_ns: int) -> bool:
        return self.start_ns <= epoch_ns < self.end_ns

    def widened(self, before: dt.timedelta = dt.timedelta(0), after: dt.timedelta = dt.timedelta(0)) -> "Window":
        return Window(self.start - before, self.end + after)

    def split(self, step: dt.timedelta) -> Iterator["Window"]:
        """Consecutive sub-windows of at most `step`, covering self exactly."""
        if step <= dt.timedelta(0):
            raise ConfigError("split step must be positive")
        cursor = self.start
        while cursor < self.end:
            nxt = min(cursor + step, self.end)
            yield Window(cursor, nxt)
            cursor = nxt

    def halves(self) -> tuple["Window", "Window"]:
        middle = self.start + (self.end - self.start) / 2
        # Keep whole seconds so APIs that take epoch seconds split cleanly.
        middle = middle.replace(microsecond=0)
        if middle <= self.start:
            raise ConfigError(f"window {self} is too short to split")
        return Window(self.start, middle), Window(middle, self.end)

    def days(self) -> list[dt.date]:
        """UTC calendar days that this window touches."""
        first = self.start.date()
        last = (self.end - dt.timedelta(microseconds=1)).date()
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"
