"""The .hyper writer: DDL with assumed keys, span replacement, newest-wins dimension upsert, and a
failed build that leaves the previous file untouched (work happens on a copy)."""

import datetime as dt

import pyarrow as pa
import pytest

from etl.extracts import model
from etl.extracts.definition import Column, Fact
from etl.extracts.hyper_store import ExtractWriter, create_table_sql, declared_keys, hyper_process, read_query
from etl.extracts.transform import arrow_schema

MEASURE = Column("avg_value", "double", "avg(value)")
FACT = model.fact_table(Fact("fact_t_daily", "day", "5m", ("host",), (), (MEASURE,)))
TABLES = [model.DIM_DATE, model.DIM_HOST, model.DIM_HOST_GROUP, model.BRIDGE_HOST_GROUP, FACT]
UTC = dt.timezone.utc


def fact_rows(day: dt.date, values: dict[str, float]) -> pa.Table:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pa.table({
        "host_key": list(values), "date_key": [day] * len(values),
        "period_start_local": [start.replace(tzinfo=None)] * len(values),
        "period_start_utc": [start] * len(values), "period_end_utc": [start + dt.timedelta(days=1)] * len(values),
        "avg_value": list(values.values()),
    }).cast(arrow_schema(FACT))


def host_rows(name: str, seen: dt.datetime) -> pa.Table:
    return pa.table({"host_key": ["zabbix:h1"], "source": ["zabbix"], "host": ["h1"], "host_name": [name],
                     "host_groups": ["g"], "last_seen_utc": [seen]}).cast(arrow_schema(model.DIM_HOST))


def test_ddl_declares_assumed_keys():
    sql = create_table_sql(FACT)
    assert 'ASSUMED PRIMARY KEY ("host_key", "date_key")' in sql
    assert 'ASSUMED FOREIGN KEY ("host_key") REFERENCES "Extract"."dim_host" ("host_key")' in sql
    assert '"host_key" TEXT NOT NULL' in sql


def test_replace_span_upsert_and_failed_build(tmp_path):
    path = tmp_path / "t.hyper"
    d1, d2 = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
    new, old = dt.datetime(2026, 11, 25, tzinfo=UTC), dt.datetime(2026, 11, 20, tzinfo=UTC)
    with hyper_process() as process:
        with ExtractWriter(process, path, TABLES) as w:
            w.replace_span(FACT, (d1, d2), fact_rows(d1, {"zabbix:h1": 1.0, "zabbix:h2": 2.0}))
            w.replace_span(FACT, (d2, d2 + dt.timedelta(days=1)), fact_rows(d2, {"zabbix:h1": 3.0}))
            assert w.upsert_latest(model.DIM_HOST, host_rows("new name", new), "host_key") == ["zabbix:h1"]
        with ExtractWriter(process, path, TABLES) as w:
            # Re-running day 1 with different data replaces exactly day 1.
            w.replace_span(FACT, (d1, d2), fact_rows(d1, {"zabbix:h1": 5.0}))
            # An older build must not bring back an old name.
            assert w.upsert_latest(model.DIM_HOST, host_rows("old name", old), "host_key") == []
        rows = read_query(process, path, 'SELECT host_key, date_key, avg_value FROM "Extract".fact_t_daily ORDER BY 2, 1')
        assert [(k, str(d), v) for k, d, v in rows] == [("zabbix:h1", "2026-11-24", 5.0), ("zabbix:h1", "2026-11-25", 3.0)]
        assert read_query(process, path, 'SELECT host_name FROM "Extract".dim_host') == [["new name"]]
        before = path.read_bytes()
        with pytest.raises(RuntimeError, match="boom"):
            with ExtractWriter(process, path, TABLES) as w:
                w.replace_span(FACT, (d1, d2), fact_rows(d1, {}))
                raise RuntimeError("boom")
        assert path.read_bytes() == before
        assert not list(tmp_path.glob(".t.hyper.building-*"))
        keys = declared_keys(process, path)
        assert keys["fact_t_daily"] == {"primary_key": True, "references": ["dim_date", "dim_host"]}


def test_changed_definition_asks_for_fresh(tmp_path):
    from etl.errors import StoreError

    path = tmp_path / "t.hyper"
    other = model.fact_table(Fact("fact_t_daily", "day", "5m", ("host",), (), (MEASURE, Column("n", "bigint", "count(*)"))))
    with hyper_process() as process:
        with ExtractWriter(process, path, TABLES):
            pass
        with pytest.raises(StoreError, match="rebuild it with `monetl extracts build --fresh`"):
            with ExtractWriter(process, path, TABLES[:-1] + [other]):
                pass
        with ExtractWriter(process, path, TABLES[:-1] + [other], fresh=True):
            pass


def test_exact_unsigned_measures_round_trip_through_hyper(tmp_path):
    """Hyper has no uint64: `uint` is NUMERIC(20,0) and `decimal38` NUMERIC(38,0), in a file
    created at database version 3 (128-bit numerics); 2^64-1 and a sum above it come back exact."""
    import decimal

    wide = model.fact_table(Fact("fact_u_daily", "day", "5m", ("host",), (),
                                 (Column("max_exact", "uint", "max(max_uint)"),
                                  Column("sum_exact", "decimal38", "sum(sum_uint)"))))
    tables = [model.DIM_DATE, model.DIM_HOST, model.DIM_HOST_GROUP, model.BRIDGE_HOST_GROUP, wide]
    day = dt.date(2026, 11, 25)
    start = dt.datetime(2026, 11, 25, tzinfo=UTC)
    big = [2**64 - 1, 2**53 + 1]
    rows = pa.table({
        "host_key": ["zabbix:h1", "zabbix:h2"], "date_key": [day] * 2,
        "period_start_local": [start.replace(tzinfo=None)] * 2, "period_start_utc": [start] * 2,
        "period_end_utc": [start + dt.timedelta(days=1)] * 2,
        "max_exact": [decimal.Decimal(v) for v in big], "sum_exact": [decimal.Decimal(3 * v) for v in big],
    }).cast(arrow_schema(wide))
    path = tmp_path / "u.hyper"
    with hyper_process() as process:
        with ExtractWriter(process, path, tables) as w:
            w.replace_span(wide, (day, day + dt.timedelta(days=1)), rows)
        got = read_query(process, path, 'SELECT CAST(max_exact AS TEXT), CAST(sum_exact AS TEXT) '
                                        'FROM "Extract".fact_u_daily ORDER BY host_key')
    assert got == [[str(v), str(3 * v)] for v in big]
    assert 'NUMERIC(20,0)' in create_table_sql(wide) and 'NUMERIC(38,0)' in create_table_sql(wide)
