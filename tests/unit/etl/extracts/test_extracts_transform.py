"""Pure transforms: item key globs, fact rows from hand-made rollup rows, filled-in silent series,
host-group facts, and 'no data' minutes limited to what the lake covers."""

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

from etl.extracts.definition import DEFINITIONS_DIR, load, parse
from etl.extracts.source import DATASET_DIRS
from etl.extracts.transform import SpanFrame, date_dimension, like_pattern
from etl.window import Window

DAY = dt.date(2026, 11, 24)
# Report day 2026-11-24 in Asia/Shanghai = [2026-11-23 16:00, 2026-11-24 16:00) UTC.
T0 = int(dt.datetime(2026, 11, 23, 16, tzinfo=dt.timezone.utc).timestamp())


def rollup_rows(rows):
    """rows: (host, groups, itemid, key, bucket, min, max, sum, count)"""
    cols = ["host", "host_groups", "itemid", "key", "bucket", "min", "max", "sum", "count"]
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    n = len(rows)
    return pa.table({
        "source": ["zabbix"] * n, "host": data["host"], "host_name": [h.upper() for h in data["host"]],
        "host_groups": pa.array(data["host_groups"], pa.list_(pa.string())), "itemid": pa.array(data["itemid"], pa.int64()),
        "key": data["key"], "item_name": data["key"], "units": ["%"] * n, "value_type": pa.array([0] * n, pa.int8()),
        "bucket": pa.array(data["bucket"], pa.int64()), "min": data["min"], "max": data["max"], "sum": data["sum"],
        "count": pa.array(data["count"], pa.int64()), "last": data["max"],
    })


@pytest.mark.parametrize("glob, key, matches", [
    ("vfs.fs.size[*,pfree]", "vfs.fs.size[/data,pfree]", True),
    ("vfs.fs.size[*,pfree]", "vfs.fs.size[/data,pused]", False),
    ("system.cpu.util", "system.cpu.util", True),
    ("system.cpu.util", "system.cpu.util[,user]", False),
    ("net.if.in[*]", "net.if.in[eth0]", True),
    ("a_b", "axb", False),           # '_' is literal, not a LIKE wildcard
    ("100%", "100x", False),         # so is '%'
])
def test_like_pattern(glob, key, matches):
    found = duckdb.connect().execute(f"SELECT ? LIKE '{like_pattern(glob)}' ESCAPE '\\'", [key]).fetchall()[0][0]
    assert found is matches


def test_capacity_daily_and_group_rows_from_rollups():
    capacity = load(DEFINITIONS_DIR / "capacity.json")
    rows = rollup_rows([
        # h1 CPU: three 5-minute buckets with averages 10, 20, 90
        ("h1", ["g1", "g2"], 1, "system.cpu.util", T0, 5, 15, 20, 2),
        ("h1", ["g1", "g2"], 1, "system.cpu.util", T0 + 300, 20, 20, 20, 1),
        ("h1", ["g1", "g2"], 1, "system.cpu.util", T0 + 86400 - 300, 80, 99, 180, 2),
        # the next report day: must not count
        ("h1", ["g1", "g2"], 1, "system.cpu.util", T0 + 86400, 100, 100, 100, 1),
        # an item no rule matches
        ("h1", ["g1", "g2"], 2, "system.swap.size[,free]", T0, 1, 1, 1, 1),
        ("h2", ["g1"], 3, "system.cpu.util", T0, 50, 50, 50, 1),
    ])
    daily = next(f for f in capacity.facts if f.table == "fact_capacity_daily")
    group = next(f for f in capacity.facts if f.table == "fact_capacity_group_daily")
    with SpanFrame(capacity, rows, "Asia/Shanghai") as frame:
        facts = frame.fact(daily, (DAY, DAY + dt.timedelta(days=1))).to_pylist()
        groups = {r["group_key"]: r for r in frame.fact(group, (DAY, DAY + dt.timedelta(days=1))).to_pylist()}
        dims = frame.dims(["dim_host", "dim_item", "bridge_host_group", "dim_host_group"])
    h1 = next(r for r in facts if r["host_key"] == "zabbix:h1")
    assert len(facts) == 2
    assert h1["avg_value"] == pytest.approx(220 / 5)
    assert h1["p95_value"] == pytest.approx(20 + 0.9 * (90 - 20))   # linear interpolation over 10, 20, 90
    assert (h1["max_value"], h1["min_value"], h1["samples"]) == (99, 5, 5)
    assert h1["date_key"] == DAY and h1["period_start_utc"] == dt.datetime(2026, 11, 23, 16, tzinfo=dt.timezone.utc)
    assert h1["period_start_local"] == dt.datetime(2026, 11, 24)
    assert groups["g1"]["samples"] == 6 and groups["g2"]["samples"] == 5
    assert groups["g1"]["metric"] == "cpu_util_pct"
    assert {r["item_key"]: r["metric"] for r in dims["dim_item"].to_pylist()} == {"zabbix:1": "cpu_util_pct",
                                                                                  "zabbix:3": "cpu_util_pct"}
    assert sorted(tuple(r.values()) for r in dims["bridge_host_group"].to_pylist()) == [
        ("zabbix:h1", "g1"), ("zabbix:h1", "g2"), ("zabbix:h2", "g1")]
    assert dims["dim_host"].to_pylist()[0]["host_groups"] == "g1, g2"


def test_silent_series_gets_a_row_and_no_data_is_limited_to_lake_coverage():
    availability = load(DEFINITIONS_DIR / "availability.json")
    rows = rollup_rows([
        # h1 pings in 2 buckets of the day; h2 only the day before (inside the 7-day look-back)
        ("h1", [], 1, "agent.ping", T0, 1, 1, 5, 5),
        ("h1", [], 1, "agent.ping", T0 + 600, 1, 1, 5, 5),
        ("h2", [], 2, "agent.ping", T0 - 3600, 1, 1, 5, 5),
    ])
    fact = availability.facts[0]
    span = (DAY, DAY + dt.timedelta(days=1))
    with SpanFrame(availability, rows, "Asia/Shanghai") as frame:
        full = {r["host_key"]: r for r in frame.fact(fact, span).to_pylist()}
    assert full["zabbix:h1"]["minutes_with_data"] == 10
    assert full["zabbix:h1"]["no_data_minutes"] == 1440 - 10
    assert full["zabbix:h1"]["up_ratio"] == 1.0
    assert full["zabbix:h2"]["samples"] == 0 and full["zabbix:h2"]["no_data_minutes"] == 1440
    assert full["zabbix:h2"]["up_ratio"] is None
    # The lake ends at 2026-11-24 00:00 UTC: only the first 8 hours of the report day are known.
    coverage = Window(dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc))
    with SpanFrame(availability, rows, "Asia/Shanghai", coverage) as frame:
        clipped = {r["host_key"]: r for r in frame.fact(fact, span).to_pylist()}
    assert clipped["zabbix:h1"]["no_data_minutes"] == 480 - 10
    assert clipped["zabbix:h2"]["no_data_minutes"] == 480


def test_up_ratio_is_the_mean_of_check_items_only():
    """up_ratio averages the 0/1 items marked "check" (icmpping: 0 while the host is down); the
    response time in seconds (icmppingsec) is no ratio: NULL."""
    availability = load(DEFINITIONS_DIR / "availability.json")
    assert [r.metric for r in availability.items if r.check] == ["agent_ping", "icmp_ping"]
    rows = rollup_rows([
        ("h1", [], 1, "icmpping", T0, 1, 1, 5, 5),
        ("h1", [], 1, "icmpping", T0 + 300, 0, 0, 0, 5),       # down for 5 checks
        ("h1", [], 1, "icmpping", T0 + 600, 0, 1, 3, 5),
        ("h1", [], 2, "icmppingsec", T0, 0.0002, 0.0004, 0.0015, 5),
    ])
    with SpanFrame(availability, rows, "Asia/Shanghai") as frame:
        facts = {r["item_key"]: r for r in frame.fact(availability.facts[0], (DAY, DAY + dt.timedelta(days=1))).to_pylist()}
    assert facts["zabbix:1"]["up_ratio"] == pytest.approx(8 / 15)
    assert facts["zabbix:2"]["up_ratio"] is None and facts["zabbix:2"]["samples"] == 5


def test_check_flag_must_be_a_boolean(tmp_path):
    from etl.extracts.definition import DefinitionError

    data = json.loads((DEFINITIONS_DIR / "availability.json").read_text(encoding="utf-8"))
    data["items"][0]["check"] = "yes"
    with pytest.raises(DefinitionError, match=r"items\[0\]\.check"):
        parse(tmp_path / "availability.json", data)


def test_findings_rows_exclude_minute_metrics_and_group_by_attributes(tmp_path):
    data = json.loads((DEFINITIONS_DIR / "findings.json").read_text(encoding="utf-8"))
    findings = parse(tmp_path / "findings.json", data)
    at = dt.datetime(2026, 11, 24, 1, tzinfo=dt.timezone.utc)
    table = pa.table({
        "job": ["illegal_access", "illegal_access", "trade_perf"], "rule": ["ssh_bruteforce", "ssh_bruteforce", "minute_metrics"],
        "severity": ["high", "high", None], "source": ["203.0.113.9", "198.51.100.7", None],
        "target": ["sshd", "sshd", None], "fingerprint": ["a", "b", "c"], "count": [40, 12, 300],
        "first_seen": pa.array([at, at, at], pa.timestamp("us", tz="UTC")),
        "last_seen": pa.array([at, at, at], pa.timestamp("us", tz="UTC")),
    })
    with SpanFrame(findings, table, "Asia/Shanghai") as frame:
        rows = frame.fact(findings.facts[0], (DAY, DAY + dt.timedelta(days=1))).to_pylist()
    assert [(r["source"], r["findings"], r["events"]) for r in rows] == [("198.51.100.7", 1, 12), ("203.0.113.9", 1, 40)]


def test_date_dimension():
    dim = date_dimension([dt.date(2026, 11, 29), dt.date(2026, 11, 30), dt.date(2026, 11, 29)]).to_pylist()
    assert len(dim) == 2
    sunday, monday = dim
    assert (sunday["is_weekend"], sunday["day_of_week"], sunday["week_start"]) == (True, 7, dt.date(2026, 11, 23))
    assert (monday["iso_week"], monday["quarter"], monday["month_name"]) == (49, 4, "November")


def test_dataset_dirs_match_the_lake_layout():
    from etl.lake import layout

    assert DATASET_DIRS == {"raw": layout.POINTS, **layout.ROLLUPS}


def test_raw_measures_ignore_trend_rows_and_text_items():
    from etl.schema import point_schema

    kcmm = load(DEFINITIONS_DIR / "kcmm.json")
    base = {"source": "kcmm", "host": "ws01", "host_name": "终端", "host_groups": ["KCMM"], "itemid": 7,
            "key": "kcmm.order_entry_latency_ms", "item_name": "Order latency", "units": "ms", "value_type": 0, "ns": 0,
            "run_id": "t"}
    rows = pa.Table.from_pylist([
        {**base, "value": 10.0, "clock": T0 + 60, "resolution": "raw"},
        {**base, "value": 30.0, "clock": T0 + 120, "resolution": "raw"},
        # an hourly trend row of the same item: an average, not a sample
        {**base, "value": 500.0, "clock": T0, "resolution": "1h", "value_min": 1.0, "value_max": 900.0,
         "value_count": 60},
        {**base, "itemid": 8, "key": "status_text", "value_type": 1, "value": None, "value_text": "OK",
         "clock": T0 + 60, "resolution": "raw"},
    ], schema=point_schema())
    with SpanFrame(kcmm, rows, "Asia/Shanghai") as frame:
        (daily,) = frame.fact(kcmm.facts[0], (DAY, DAY + dt.timedelta(days=1))).to_pylist()
    assert (daily["avg_value"], daily["max_value"], daily["samples"]) == (20.0, 30.0, 2)
