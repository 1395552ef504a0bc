"""trade_perf on a generated (labelled synthetic) trading day and the real HAProxy / IIS samples,
loaded through the real loader: per-minute counts equal an independent reading of the files."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from collections import Counter, defaultdict

import pytest

from etl.logs.jobs import analyse, run_job
from etl.logs.jobs.common import load_rules
from etl.window import UTC, Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-logjobs-trade"
OPEN = Window.parse("2026-11-25T01:30Z", "2026-11-25T01:35Z")  # 09:30-09:35 Asia/Shanghai: the open burst
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}) ([+-]\d{4}) \S+ REQ type=(\w+) .* channel=(\w+) "
                  r".* latency_us=(\d+) result=(\w+)")


@pytest.fixture(scope="module")
def trade_settings(settings, elasticsearch_service, tmp_path_factory):
    from etl.search.client import es_client

    s = dataclasses.replace(settings, es_index_prefix=PREFIX, lake_url=f"file://{tmp_path_factory.mktemp('lake')}",
                            quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    es_client(s).indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True)
    return s


@pytest.fixture(scope="module")
def trade_file(trade_settings, samples_dir, tmp_path_factory):
    from etl.logs.load import load_files
    from etl.logs.tradegen import generate_file

    path = tmp_path_factory.mktemp("trade") / "trade_gateway.log"
    generate_file(path, start="2026-11-25", end="2026-11-26", seed=11, rate=0.3, gateways=2)
    load_files(trade_settings, "trade", [path])
    load_files(trade_settings, "haproxy", [samples_dir / "lnav_haproxy/logfile_haproxy.0"], year=2019,
               tz="Europe/Berlin")
    load_files(trade_settings, "iis", [samples_dir / "lnav_iis_w3c/logfile_w3c_big.0"])
    return path


def expected_minutes(path, window: Window, cfg: dict) -> dict:
    t_us = cfg["apdex_t_ms"] * 1000
    out: dict = defaultdict(Counter)
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        stamp, micros, offset, kind, channel, latency, result = m.groups()
        local = dt.datetime.strptime(f"{stamp} {offset}", "%Y-%m-%d %H:%M:%S %z").replace(microsecond=int(micros))
        when = local.astimezone(UTC)
        if not window.contains(when):
            continue
        latency = int(latency)
        sla_us = cfg["sla_ms"].get(kind, cfg["sla_ms"]["default"]) * 1000
        c = out[(when.replace(second=0, microsecond=0), kind, channel)]
        c["volume"] += 1
        c["success"] += result == "OK"
        c["sla_breaches"] += latency > sla_us
        c["satisfied"] += latency <= t_us
        c["tolerating"] += t_us < latency <= 4 * t_us
    return out


def test_minute_rows_equal_the_file(trade_settings, trade_file):
    cfg = load_rules()["trade_perf"]
    result = run_job(trade_settings, "trade_perf", OPEN)
    expected = expected_minutes(trade_file, OPEN, cfg)
    assert expected, "the generated file has no requests in the opening window"
    got = {}
    for row in result.metrics:
        if row["rule"] == "minute_metrics" and row["source"] == "trade.gateway":
            got[(row["bucket"], row["target"], row["channel"])] = Counter(
                {k: row[k] for k in ("volume", "success", "sla_breaches", "satisfied", "tolerating") if row[k]})
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert got == expected
    # The window rows per branch x channel re-cut the same requests.
    window_rows = [r for r in result.metrics if r["rule"] == "window_metrics"]
    assert sum(r["volume"] for r in window_rows) == sum(c["volume"] for c in expected.values())


def test_thresholds_from_rules_make_findings(trade_settings, trade_file):
    from etl.search.client import es_client

    rules = copy.deepcopy(load_rules())
    # An SLA below the median latency of NEW_ORDER: most requests breach it.
    rules["trade_perf"]["sla_ms"]["NEW_ORDER"] = 0.5
    result = analyse(es_client(trade_settings), trade_settings, "trade_perf", OPEN, rules)
    breach = [f for f in result.findings if f.rule == "sla_breach_rate" and f.target == "NEW_ORDER"]
    assert len(breach) == 1 and breach[0].severity == "high"
    expected = expected_minutes(trade_file, OPEN, rules["trade_perf"])
    assert breach[0].count == sum(c["sla_breaches"] for (_, kind, _), c in expected.items() if kind == "NEW_ORDER")
    assert not [f for f in result.findings if f.target == "QUOTE"]


def test_haproxy_and_iis_latency_per_backend_and_path(trade_settings, trade_file, samples_dir):
    cfg = load_rules()["trade_perf"]["web"]
    window = Window.parse("2015-01-01T00:00Z", "2020-01-01T00:00Z")
    result = run_job(trade_settings, "trade_perf", window)
    rows = [r for r in result.metrics if r["source"] in ("haproxy", "iis")]
    per_backend = Counter()
    breaches = Counter()
    timers = re.compile(r"\] \S+ (\S+?)/\S+ -?\d+/-?\d+/-?\d+/-?\d+/\+?(-?\d+) ")
    for line in (samples_dir / "lnav_haproxy/logfile_haproxy.0").read_text().splitlines():
        m = timers.search(line)
        if m:
            per_backend[m.group(1)] += 1
            breaches[m.group(1)] += int(m.group(2)) > cfg["sla_ms"]
    got = Counter()
    got_breaches = Counter()
    for r in rows:
        if r["source"] == "haproxy":
            got[r["target"]] += r["volume"]
            got_breaches[r["target"]] += r["sla_breaches"]
    assert got == per_backend and got_breaches == breaches
    iis_lines = [l for l in (samples_dir / "lnav_iis_w3c/logfile_w3c_big.0").read_text(errors="replace").splitlines()
                 if l and not l.startswith("#")]
    assert sum(r["volume"] for r in rows if r["source"] == "iis") == len(iis_lines)
    assert result.stats["web"]["requests"] == sum(per_backend.values()) + len(iis_lines)
