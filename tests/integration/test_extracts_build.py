"""Extracts built from a real lake (local filesystem, written and read by etl.lake), opened with
tableauhyperapi and checked against DuckDB over the same Parquet files: row counts, aggregates,
declared keys, idempotent re-runs, an empty day, findings, the HTML summary and run_demo."""

from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import extracts_lake
from etl.config import Settings
from etl.extracts.build import build, lake_report_days
from etl.extracts.hyper_store import declared_keys, hyper_process, qualified

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
FIRST = dt.date(2026, 11, 23)
CAPACITY_KEYS = ["system.cpu.util", "vm.memory.utilization", "vfs.fs.size[/,pfree]", "vfs.fs.size[/data,pfree]",
                 "net.if.in[eth0]", "net.if.out[eth0]"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    home = tmp_path_factory.mktemp("extracts-home")
    cfg = Settings(home=home, report_tz=TZ, extracts_hdfs_url="", tableau_server_url="")
    extracts_lake.standard_lake(cfg, FIRST)
    write_findings(cfg)
    return cfg


def write_findings(cfg):
    from etl.lake import write_findings as lake_write_findings

    at = dt.datetime(2026, 11, 24, 2, 30, tzinfo=dt.timezone.utc)
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table({
        "job": ["illegal_access"] * 3, "rule": ["ssh_bruteforce", "ssh_bruteforce", "minute_metrics"],
        "severity": ["high", "medium", None], "source": ["203.0.113.9", "198.51.100.7", None],
        "target": ["sshd", "sshd", None], "count": pa.array([40, 12, 999], pa.int64()),
        "first_seen": pa.array([at, at + dt.timedelta(hours=16), at], ts),
        "last_seen": pa.array([at + dt.timedelta(minutes=5)] * 3, ts),
        "fingerprint": ["fp-a", "fp-b", "fp-c"],
    })
    lake_write_findings(cfg, "illegal_access", dt.date(2026, 11, 24), table)
    # trade_perf: per-minute metric rows (two branches, three minutes), a window row and a finding.
    minutes = [at + dt.timedelta(minutes=m) for m in (0, 1, 70)]
    metric = {
        "job": ["trade_perf"] * 5, "rule": ["minute_metrics"] * 4 + ["window_metrics"],
        "severity": [None] * 5, "source": ["trade.gateway"] * 5, "target": ["order"] * 5,
        "branch": ["上海分公司", "上海分公司", "上海分公司", "北京分公司", None], "channel": ["app"] * 4 + [None],
        "bucket": pa.array(minutes + [at, at], ts), "volume": pa.array([100, 50, 10, 7, 167], pa.int64()),
        "success": pa.array([99, 50, 9, 7, 165], pa.int64()), "p95_ms": [12.5, 30.0, 8.0, 5.0, 25.0],
        "sla_breaches": pa.array([1, 4, 0, 0, 5], pa.int64()), "satisfied": pa.array([90, 40, 10, 7, 147], pa.int64()),
        "tolerating": pa.array([8, 6, 0, 0, 14], pa.int64()), "fingerprint": [f"tp-{i}" for i in range(5)],
        "first_seen": pa.array([at] * 5, ts), "last_seen": pa.array([at] * 5, ts), "count": pa.array([0] * 5, pa.int64()),
    }
    lake_write_findings(cfg, "trade_perf", dt.date(2026, 11, 24), pa.table(metric))


@pytest.fixture(scope="module")
def built(lake):
    days = lake_report_days(lake)
    results = {r.name: r for r in build(lake, "all", days)}
    return days, results


@pytest.fixture(scope="module")
def hyper():
    with hyper_process() as process:
        yield process


def hyper_tables(process, path, tables) -> dict[str, list[tuple]]:
    """All rows of each table (one connection), in a total order so two reads compare equal."""
    from tableauhyperapi import Connection, CreateMode

    with Connection(process.endpoint, str(path), CreateMode.NONE) as conn:
        return {t: sorted((tuple(r) for r in conn.execute_list_query(f"SELECT * FROM {qualified(t)}")), key=repr)
                for t in tables}


def as_dicts(path, table):
    from tableauhyperapi import Connection, CreateMode, TableName

    with hyper_process() as process, Connection(process.endpoint, str(path), CreateMode.NONE) as conn:
        cols = [c.name.unescaped for c in conn.catalog.get_table_definition(TableName("Extract", table)).columns]
        return [dict(zip(cols, row)) for row in conn.execute_list_query(f"SELECT * FROM {qualified(table)}")]


def lake_sql(cfg, sql: str) -> list[tuple]:
    """DuckDB over the lake's Parquet files directly ({lake} and {tz} are substituted)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    root = cfg.lake_url.removeprefix("file://")
    return con.execute(sql.format(lake=root, tz=TZ)).fetchall()


def to_date(value) -> dt.date:
    return dt.date(value.year, value.month, value.day)


def test_report_days_cover_both_utc_days(built):
    days, results = built
    assert days == [FIRST, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)]
    assert set(results) == {"capacity", "availability", "kcmm", "findings", "trade_perf"}
    for result in results.values():
        assert result.path.exists() and result.path.suffix == ".hyper"


def test_capacity_daily_matches_duckdb_over_the_5m_rollups(lake, built):
    _, results = built
    keys = ", ".join(f"'{k}'" for k in CAPACITY_KEYS)
    expected = {
        (f"zabbix:{host}", f"zabbix:{itemid}", day): (avg, p95, mx, n)
        for host, itemid, day, avg, p95, mx, n in lake_sql(lake, f"""
            SELECT host, itemid, CAST(timezone('{{tz}}', to_timestamp(bucket)) AS DATE) AS day,
                   sum(sum) / sum(count), quantile_cont(sum / count, 0.95), max(max), sum(count)
            FROM read_parquet('{{lake}}/rollup_5m/source=zabbix/date=*/*.parquet')
            WHERE key IN ({keys}) GROUP BY ALL""")}
    rows = as_dicts(results["capacity"].path, "fact_capacity_daily")
    assert len(rows) == len(expected) == results["capacity"].rows["fact_capacity_daily"]
    for row in rows:
        avg, p95, mx, n = expected[(row["host_key"], row["item_key"], to_date(row["date_key"]))]
        assert row["avg_value"] == pytest.approx(avg) and row["p95_value"] == pytest.approx(p95)
        assert row["max_value"] == pytest.approx(mx) and row["samples"] == n


def test_capacity_weekly_and_monthly_match_the_1h_rollups(lake, built):
    _, results = built
    keys = ", ".join(f"'{k}'" for k in CAPACITY_KEYS)
    for table, unit in (("fact_capacity_weekly", "week"), ("fact_capacity_monthly", "month")):
        expected = {
            (f"zabbix:{host}", f"zabbix:{itemid}", day): (avg, p95, n)
            for host, itemid, day, avg, p95, n in lake_sql(lake, f"""
                SELECT host, itemid, CAST(date_trunc('{unit}', timezone('{{tz}}', to_timestamp(bucket))) AS DATE),
                       sum(sum) / sum(count), quantile_cont(sum / count, 0.95), sum(count)
                FROM read_parquet('{{lake}}/rollup_1h/source=zabbix/date=*/*.parquet')
                WHERE key IN ({keys}) GROUP BY ALL""")}
        rows = as_dicts(results["capacity"].path, table)
        assert len(rows) == len(expected) == 18
        for row in rows:
            avg, p95, n = expected[(row["host_key"], row["item_key"], to_date(row["date_key"]))]
            assert row["avg_value"] == pytest.approx(avg) and row["p95_value"] == pytest.approx(p95)
            assert row["samples"] == n


def test_kcmm_hourly_matches_raw_points_with_local_hours(lake, built):
    _, results = built
    expected = {
        (f"kcmm:{host}", f"kcmm:{itemid}", to_date(hour), hour.hour): (avg, p95, mx, n)
        for host, itemid, hour, avg, p95, mx, n in lake_sql(lake, """
            SELECT host, itemid, date_trunc('hour', timezone('{tz}', to_timestamp(clock))) AS hour,
                   avg(value), quantile_cont(value, 0.95), max(value), count(value)
            FROM read_parquet('{lake}/points/source=kcmm/date=*/*.parquet') GROUP BY ALL""")}
    rows = as_dicts(results["kcmm"].path, "fact_kcmm_hourly")
    assert len(rows) == len(expected) == 2 * 2 * 48
    for row in rows:
        avg, p95, mx, n = expected[(row["host_key"], row["item_key"], to_date(row["date_key"]), row["local_hour"])]
        assert (row["avg_value"], row["p95_value"], row["max_value"], row["samples"]) == (
            pytest.approx(avg), pytest.approx(p95), pytest.approx(mx), n)
        # UTC and local timestamps of the same hour are 8 hours apart in Shanghai.
        local = row["period_start_local"]
        utc = row["period_start_utc"]
        assert (dt.datetime(local.year, local.month, local.day, local.hour)
                - dt.datetime(utc.year, utc.month, utc.day, utc.hour)) == dt.timedelta(hours=8)


def test_availability_counts_gaps_and_silent_days(lake, built):
    _, results = built
    rows = {(r["host_key"], to_date(r["date_key"])): r for r in as_dicts(results["availability"].path,
                                                                        "fact_availability_daily")}
    buckets = {(f"zabbix:{host}", day): n for host, day, n in lake_sql(lake, """
        SELECT host, CAST(timezone('{tz}', to_timestamp(bucket)) AS DATE), count(DISTINCT bucket)
        FROM read_parquet('{lake}/rollup_5m/source=zabbix/date=*/*.parquet') WHERE key = 'agent.ping'
        GROUP BY ALL""")}
    # The lake covers UTC 11-23 and 11-24: Shanghai 11-23 from 08:00, 11-24 whole, 11-25 until 08:00.
    covered = {FIRST: 960, FIRST + dt.timedelta(days=1): 1440, FIRST + dt.timedelta(days=2): 480}
    assert len(rows) == 3 * 3
    for (host, day), row in rows.items():
        assert row["minutes_with_data"] == 5 * buckets.get((host, day), 0)
        assert row["no_data_minutes"] == covered[day] - row["minutes_with_data"]
    # The fixture's shapes: db01 down 2 h on UTC 11-23; web02 silent all UTC 11-24.
    assert rows[("zabbix:db01", FIRST)]["no_data_minutes"] == 120
    assert rows[("zabbix:web02", FIRST + dt.timedelta(days=1))]["no_data_minutes"] == 960
    silent = rows[("zabbix:web02", FIRST + dt.timedelta(days=2))]
    assert (silent["samples"], silent["no_data_minutes"], silent["up_ratio"]) == (0, 480, None)


def test_findings_come_from_the_lake_without_metric_rows(built):
    _, results = built
    rows = as_dicts(results["findings"].path, "fact_findings_daily")
    # 02:30 UTC is 10:30 on 11-24 in Shanghai; +16 h is 02:30 on 11-25.
    assert sorted((to_date(r["date_key"]), r["severity"], r["source"], r["findings"], r["events"]) for r in rows) == [
        (dt.date(2026, 11, 24), "high", "203.0.113.9", 1, 40),
        (dt.date(2026, 11, 25), "medium", "198.51.100.7", 1, 12)]


def test_trade_perf_matches_duckdb_over_the_findings_partition(lake, built):
    _, results = built
    expected = {
        (branch or "", to_date(hour), hour.hour): (volume, success, breaches, worst, apdex)
        for branch, hour, volume, success, breaches, worst, apdex in lake_sql(lake, """
            SELECT branch, date_trunc('hour', timezone('{tz}', bucket)), sum(volume), sum(success),
                   sum(sla_breaches), max(p95_ms), (sum(satisfied) + sum(tolerating) / 2.0) / sum(volume)
            FROM read_parquet('{lake}/findings/job=trade_perf/date=*/*.parquet')
            WHERE rule = 'minute_metrics' GROUP BY ALL""")}
    rows = as_dicts(results["trade_perf"].path, "fact_trade_perf_hourly")
    assert len(rows) == len(expected) == 3      # 上海 10:xx and 11:xx local, 北京 10:xx
    for row in rows:
        volume, success, breaches, worst, apdex = expected[(row["branch"], to_date(row["date_key"]), row["local_hour"])]
        assert (row["volume"], row["success"], row["sla_breaches"]) == (volume, success, breaches)
        assert row["worst_minute_p95_ms"] == worst and row["apdex"] == pytest.approx(apdex)
    daily = {r["branch"]: r for r in as_dicts(results["trade_perf"].path, "fact_trade_perf_daily")}
    assert daily["上海分公司"]["volume"] == 160 and daily["上海分公司"]["success_rate"] == pytest.approx(158 / 160)
    assert daily["上海分公司"]["busy_minutes"] == 3


def test_keys_are_declared_and_hold(built, hyper):
    from tableauhyperapi import Connection, CreateMode

    from etl.extracts import model
    from etl.extracts.definition import load_all

    _, results = built
    definitions = load_all()
    for name, result in results.items():
        keys = declared_keys(hyper, result.path)
        for table in result.rows:
            assert keys[table]["primary_key"], f"{name}.{table} has no assumed primary key"
        for fact in (t for t in result.rows if t.startswith("fact_")):
            assert "dim_date" in keys[fact]["references"]
        if name not in ("findings", "trade_perf"):
            assert keys["bridge_host_group"]["references"] == ["dim_host", "dim_host_group"]
            assert keys[f"fact_{name}_daily"]["references"] == ["dim_date", "dim_host", "dim_item"]
        # The assumed keys hold: no duplicate primary key, no orphan foreign key.
        with Connection(hyper.endpoint, str(result.path), CreateMode.NONE) as conn:
            for table in model.all_tables(definitions[name]):
                pk = ", ".join(table.primary_key)
                dupes = conn.execute_scalar_query(f"SELECT count(*) FROM (SELECT {pk} FROM {qualified(table.name)} "
                                                  f"GROUP BY {pk} HAVING count(*) > 1) d")
                assert dupes == 0, f"{name}.{table.name} has duplicate keys"
                for column, ref, ref_column in table.foreign_keys:
                    orphans = conn.execute_scalar_query(
                        f"SELECT count(*) FROM {qualified(table.name)} f WHERE NOT EXISTS "
                        f"(SELECT 1 FROM {qualified(ref)} d WHERE d.{ref_column} = f.{column})")
                    assert orphans == 0, f"{name}.{table.name}.{column} has rows missing in {ref}"


def test_rebuilding_a_day_is_idempotent(lake, built, hyper):
    _, results = built
    before = {name: hyper_tables(hyper, r.path, r.rows) for name, r in results.items()}
    for _ in range(2):  # twice: the second run replaces what the first re-run wrote
        again = {r.name: r for r in build(lake, "all", [FIRST + dt.timedelta(days=1)])}
    for name, result in again.items():
        assert result.rows == results[name].rows, f"{name}: row counts changed on re-run"
        after = hyper_tables(hyper, result.path, result.rows)
        for table, rows in before[name].items():
            assert after[table] == rows, f"{name}.{table} changed on re-run"


def test_a_day_without_data_gives_an_empty_valid_extract(lake, tmp_path, hyper):
    empty = dataclasses.replace(lake, extracts_dir=str(tmp_path / "empty"))
    results = {r.name: r for r in build(empty, "all", [dt.date(2026, 10, 1)])}
    for name, result in results.items():
        assert result.path.exists()
        assert all(n == 0 for t, n in result.rows.items() if t.startswith("fact_")), result.rows
        assert declared_keys(hyper, result.path)["dim_date"]["primary_key"]
    # The date dimension covers the spans built: Thursday 10-01's ISO week (from Monday 09-28) and October.
    assert results["capacity"].rows["dim_date"] == 3 + 31
    assert results["kcmm"].rows["dim_date"] == 1


def test_dimensions_keep_unicode_names_and_groups(built):
    _, results = built
    hosts = {r["host"]: r for r in as_dicts(results["capacity"].path, "dim_host")}
    assert hosts["db01"]["host_name"] == "核心数据库"
    assert hosts["web01"]["host_groups"] == "Web servers, 上海机房"
    groups = [r["group_name"] for r in as_dicts(results["capacity"].path, "dim_host_group")]
    assert sorted(groups) == sorted(["Databases", "Web servers", "上海机房"])


def test_summary_and_run_demo(lake, built):
    from etl.extracts import run_demo

    lines = run_demo(lake)
    assert lines[0].startswith("report days 2026-11-23..2026-11-25")
    assert any("capacity.hyper" in line and "fact_capacity_daily 48" in line for line in lines)
    summary = lake.home / "extracts" / "summary.html"
    assert f"summary: {summary}" in lines
    text = summary.read_text(encoding="utf-8")
    assert "<svg" in text and "核心数据库 (db01)" in text
    # db01's worst day in the heat map is 11-23 (2 h down out of 16 h covered).
    assert f"{100 * (960 - 120) / 960:.0f}" in text
    # The lake's first and last report days are partial (UTC 11-23 and 11-24 seen from Shanghai),
    # and the heat map's columns say so; the whole day 11-24 does not.
    head = text[text.index('<table class="heat"'):text.index("</thead>", text.index('<table class="heat"'))]
    assert "11-23*" in head and "from 08:00" in head and "11-25*" in head and "to 08:00" in head
    assert "11-24*" not in head
    assert "the lake holds 480 of 1440 min, to 08:00" in text
    # Trades of 11-24 (local): minute metrics only, the window row is not added again.
    assert "<tr><th>2026-11-24</th><td>167</td>" in text


def test_cli_build_one_extract_for_one_day(lake, built, monkeypatch, capsys):
    from etl.cli import main

    monkeypatch.setenv("MONETL_HOME", str(lake.home))
    monkeypatch.setenv("MONETL_REPORT_TZ", TZ)
    for name in ("LAKE_URL", "EXTRACTS_DIR", "EXTRACTS_HDFS_URL", "TABLEAU_SERVER_URL"):
        monkeypatch.delenv(f"MONETL_{name}", raising=False)
    assert main(["extracts", "build", "--name", "kcmm", "--start", "2026-11-24", "--no-summary"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{lake.home}/extracts/kcmm.hyper (2026-11-24..2026-11-24): fact_kcmm_daily 12, fact_kcmm_hourly 192"]
