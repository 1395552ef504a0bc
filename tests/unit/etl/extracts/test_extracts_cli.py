"""`monetl extracts` argument handling: report-day ranges, and errors printed without a traceback."""

import argparse
import datetime as dt

import pytest

from etl.cli import main
from etl.commands.extracts import _days
from etl.errors import ConfigError


def ns(start=None, end=None):
    return argparse.Namespace(start=start, end=end)


def test_day_ranges():
    assert _days(ns()) is None                                   # every day in the lake
    assert _days(ns("2026-11-24")) == [dt.date(2026, 11, 24)]    # one day
    assert _days(ns("2026-11-24", "2026-11-27")) == [dt.date(2026, 11, 24), dt.date(2026, 11, 25),
                                                     dt.date(2026, 11, 26)]
    with pytest.raises(ConfigError, match="--end needs --start"):
        _days(ns(end="2026-11-27"))
    with pytest.raises(ConfigError, match="empty day range"):
        _days(ns("2026-11-27", "2026-11-24"))


def test_unknown_extract_is_a_clean_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    assert main(["extracts", "build", "--name", "nope", "--start", "2026-11-24"]) == 2
    err = capsys.readouterr().err
    assert "no extract definition named 'nope'" in err and "Traceback" not in err


def test_list_names_every_definition(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    assert main(["extracts", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("capacity", "availability", "kcmm", "findings", "trade_perf"):
        assert f"{name} v1 from " in out
    assert "fact_capacity_weekly [week, 1h] key (host_key, item_key, date_key)" in out
    assert "(not built yet)" in out
