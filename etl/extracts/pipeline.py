"""One reports run: build extracts for report days, write summary.html, copy/publish if configured.
What the `reports` DAG, `monetl extracts build` and the demo call."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from etl.config import Settings
from etl.extracts.periods import report_days_touched
from etl.window import Window

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    extracts: list = field(default_factory=list)   # build.ExtractResult
    summary: Path | None = None
    copies: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [r.line() for r in self.extracts]
        if self.summary:
            out.append(f"summary: {self.summary}")
        return out + self.copies


def days_for_utc_days(utc_days: list[dt.date], tz: str) -> list[dt.date]:
    """Report days to rebuild after these UTC lake days changed (east of UTC each touches two)."""
    out: set[dt.date] = set()
    for day in utc_days:
        out.update(report_days_touched(Window.day(day), tz))
    return sorted(out)


def run(settings: Settings, names="all", days: list[dt.date] | None = None, fresh: bool = False,
        summary: bool = True, copy: bool = True) -> RunResult:
    from etl.extracts.build import build, lake_report_days
    from etl.extracts.publish import copy_to_hdfs, publish_to_tableau
    from etl.extracts.summary import write_summary

    if days is None:
        days = lake_report_days(settings)
    result = RunResult()
    if days:
        result.extracts = build(settings, names, days, fresh=fresh)
    else:
        log.info("extracts: the lake holds no days; nothing to build")
    if summary:
        result.summary = write_summary(settings)
    if copy and result.extracts:
        files = [r.path for r in result.extracts] + ([result.summary] if result.summary else [])
        result.copies += copy_to_hdfs(settings, files)
        result.copies += publish_to_tableau(settings, [r.path for r in result.extracts])
    return result


def run_demo(settings: Settings) -> list[str]:
    """Every extract for every report day present in the local lake, then the HTML summary."""
    from etl.extracts.build import lake_report_days

    days = lake_report_days(settings)
    if not days:
        return [f"lake {settings.lake_url} has no published days: no extracts built"]
    result = run(settings, "all", days)
    return [f"report days {days[0]}..{days[-1]} ({settings.report_tz}), {len(days)} days"] + result.lines()


def _utc_days_in_extra(extra: dict) -> set[dt.date]:
    """UTC days named by one lake asset event's extra: {"days": [...]}, {"day": ...} or
    {"window": {"start": ..., "end": ...}}; anything else names none."""
    from etl.extracts.periods import parse_day

    found: set[dt.date] = set()
    values = extra.get("days") or ([extra["day"]] if extra.get("day") else [])
    for value in values if isinstance(values, (list, tuple)) else [values]:
        found.add(parse_day(str(value)))
    window = extra.get("window")
    if isinstance(window, dict) and window.get("start") and window.get("end"):
        found.update(Window.parse(window["start"], window["end"]).days())
    return found


def report_days_for_run(settings: Settings, event_extras: list[dict], requested: list[str] | None = None,
                        newest_lake_days: int = 2) -> list[dt.date]:
    """Which report days an asset-triggered run rebuilds (such runs have no data interval):

    1. `requested` report days (a manual run's conf), as given;
    2. else the UTC days named in the triggering lake events' extra, mapped to the report days
       they touch;
    3. else the newest `newest_lake_days` UTC days published in the lake (what compaction just
       wrote), mapped the same way."""
    from etl.extracts.build import lake_utc_days
    from etl.extracts.periods import parse_day

    if requested:
        return sorted({parse_day(str(d)) for d in requested})
    utc_days: set[dt.date] = set()
    for extra in event_extras:
        utc_days |= _utc_days_in_extra(extra or {})
    if not utc_days:
        utc_days = set(lake_utc_days(settings)[-newest_lake_days:]) if newest_lake_days > 0 else set()
    return days_for_utc_days(sorted(utc_days), settings.report_tz)
