"""Health figures from run results (pure), the decorator's guarantees (result and exception pass
through, a failing push only logs once), the template covering every key pushed, and the status
grades."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import time

import pytest

from etl.config import Settings
from etl.errors import VerificationError
from etl.health import push, status
from etl.health import template
from etl.health.template import item_keys
from etl.ingest import Summary
from etl.window import Window

UTC = dt.timezone.utc


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cfg(tmp_path):
    return Settings(home=tmp_path, es_index_prefix="unit", zabbix_server_port=_closed_port(),
                    quarantine_dir=str(tmp_path / "q"), extracts_dir=str(tmp_path / "x"), health_timeout=1,
                    health_push=True)


def _summary(loaded=990, quarantined=10, failures=0) -> Summary:
    return Summary("kcmm", "db", "w", "w", "run", read={"float": loaded + quarantined}, loaded={"float": loaded},
                   quarantined={"float": quarantined}, load_failures=failures)


def test_ingest_figures_from_the_summary():
    end = dt.datetime.now(UTC) - dt.timedelta(minutes=7)
    got = push.ingest_figures({"window": Window(end - dt.timedelta(minutes=5), end)}, _summary(), None)
    assert got["monetl.ingest.loaded[kcmm]"] == 990 and got["monetl.ingest.quarantined[kcmm]"] == 10
    assert got["monetl.ingest.quarantine_pct[kcmm]"] == pytest.approx(1.0)
    assert abs(got["monetl.ingest.lag[kcmm]"] - 420) <= 2 and got["monetl.ingest.failed[kcmm]"] == 0
    failed = push.ingest_figures({"window": None}, _summary(failures=3), None)
    assert "monetl.ingest.last_success[kcmm]" not in failed and failed["monetl.ingest.failed[kcmm]"] == 1
    assert push.ingest_figures({"source": "zabbix"}, None, RuntimeError()) == {"monetl.ingest.failed[zabbix]": 1}


def test_every_pushed_key_is_an_item_of_the_template():
    keys = item_keys()
    end = dt.datetime.now(UTC)
    window = Window(end - dt.timedelta(minutes=5), end)
    produced: set[str] = set()
    for source in ("zabbix", "kcmm"):
        s = dataclasses.replace(_summary(), source=source)
        produced |= set(push.ingest_figures({"window": window}, s, None))
        bucket = type("B", (), {"end": end - dt.timedelta(hours=2)})()
        produced |= set(push.gap_values(source, [bucket]))
        report = type("R", (), {"source": source, "rows": 5, "verified": True})()
        produced |= set(push.compaction_figures({}, report, None))
        produced |= set(push.verification_figures({"source": source}, None, VerificationError("x")))
    extract = type("E", (), {"rows": {"fact_x": 3, "dim_host": 2}})()
    produced |= set(push.extract_figures({}, [extract], None))
    for job in status.LOG_JOBS:
        produced |= set(push.log_job_figures({}, type("F", (), {"job": job, "findings": [1], "window": window})(), None))
    produced |= {"monetl.quarantine.backlog", "monetl.status.fail", "monetl.status.warn", template.INSTALLED_KEY}
    assert produced <= keys, produced - keys
    assert keys <= produced | {f"monetl.ingest.last_success[{s}]" for s in ("zabbix", "kcmm")}


def test_decorated_run_returns_and_raises_unchanged_and_warns_once(cfg, caplog):
    @push.reports("verification")
    def verify(settings, source, day, fail=False):
        if fail:
            raise VerificationError("lake differs")
        return 7, "abc"

    push._warned.clear()
    with caplog.at_level(logging.DEBUG, logger="etl.health.push"):
        assert verify(cfg, "zabbix", "2026-11-20") == (7, "abc")
        with pytest.raises(VerificationError, match="lake differs"):
            verify(cfg, "zabbix", "2026-11-21", fail=True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f":{cfg.zabbix_server_port}" in warnings[0].getMessage()
    # Recorded locally whatever the push did: the newest value wins.
    state = push.read_state(cfg)
    assert state["monetl.lake.verified[zabbix]"]["value"] == 0


def test_push_off_records_only(cfg):
    off = dataclasses.replace(cfg, health_push=False)
    assert push.push(off, {"monetl.extracts.rows": 4}) is None
    assert push.read_state(off)["monetl.extracts.rows"]["value"] == 4


def test_status_grades(cfg, tmp_path):
    q = tmp_path / "q" / "points"
    q.mkdir(parents=True)
    (q / "run.jsonl").write_text('{"key": "a"}\n{"key": "b"}\n{"key": "c"}\n')
    # An overlapping run quarantined point "c" again under its own file: still one record to fix.
    (q / "overlapping-run.jsonl").write_text('{"key": "c"}\n')
    check = status.check_quarantine(cfg)
    assert (check.state, check.figures) == ("OK", {"monetl.quarantine.backlog": 3})
    assert status.check_extracts(cfg, time.time()).state == "WARN"      # none built
    x = tmp_path / "x"
    x.mkdir()
    hyper = x / "capacity.hyper"
    hyper.write_bytes(b"")
    now = time.time()
    assert status.check_extracts(cfg, now).state == "OK"
    os.utime(hyper, (now - 3 * 86400, now - 3 * 86400))
    assert status.check_extracts(cfg, now).state == "FAIL"
    assert status.check_log_job(cfg, "trade_perf", now).state == "WARN"  # never ran
    push.record(cfg, {"monetl.logs.last_run[trade_perf]": int(now - 600)}, int(now - 600))
    assert status.check_log_job(cfg, "trade_perf", now).state == "OK"
    st = status.Status([status.Check("a", "OK", ""), status.Check("b", "FAIL", "x", "do y")], "t")
    assert st.overall == "FAIL" and st.figures()["monetl.status.fail"] == 1
    assert "next: do y" in "\n".join(st.lines())
    assert json.loads(json.dumps(st.to_json()))["counts"] == {"OK": 1, "WARN": 0, "FAIL": 1}
