"""Which report days an asset-triggered reports run rebuilds (such runs have no data interval)."""

import datetime as dt

import pytest

from etl.config import Settings
from etl.errors import ConfigError
from etl.extracts.pipeline import days_for_utc_days, report_days_for_run


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, report_tz="Asia/Shanghai")


def test_requested_days_win(settings):
    days = report_days_for_run(settings, [{"days": ["2026-11-01"]}], requested=["2026-11-20", "2026-11-19"])
    assert days == [dt.date(2026, 11, 19), dt.date(2026, 11, 20)]


def test_event_extras_name_utc_days(settings):
    extras = [{"days": ["2026-11-17"]}, {"day": "2026-11-18"}, {"unrelated": 1},
              {"window": {"start": "2026-11-20T00:00Z", "end": "2026-11-21T00:00Z"}}]
    assert report_days_for_run(settings, extras) == [dt.date(2026, 11, d) for d in (17, 18, 19, 20, 21)]


def test_without_extras_the_newest_lake_days_are_used(settings):
    # Empty lake: nothing to rebuild, and no guess about "today".
    assert report_days_for_run(settings, [{}]) == []


def test_bad_day_in_extra_is_a_config_error(settings):
    with pytest.raises(ConfigError, match="cannot read 'yesterday' as a day"):
        report_days_for_run(settings, [{"days": ["yesterday"]}])


def test_utc_days_map_to_report_days():
    assert days_for_utc_days([dt.date(2026, 11, 24)], "UTC") == [dt.date(2026, 11, 24)]
    assert days_for_utc_days([dt.date(2026, 11, 24), dt.date(2026, 11, 25)], "Asia/Shanghai") == [
        dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
