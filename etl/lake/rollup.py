"""Rollups of one day's points: per item and bucket min, max, sum, count, last (avg = sum/count).

Numeric value types only. Unsigned points (value_uint) also get exact min_uint/max_uint/last_uint
(uint64) and sum_uint (DECIMAL(38,0), summed as HUGEINT: a day of 2^64-1 values cannot overflow),
beside the float64 columns every numeric item has. Raw points feed every resolution; Zabbix trend points (resolution 1h)
feed only the 1h rollup (a 5-minute bucket cannot be made from an hourly aggregate), and only for
item-hours that have no raw points, so nothing is counted twice."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa

from etl.schema import NUMERIC_TYPES, arrow_schema

BUCKET_SECONDS = {"5m": 300, "1h": 3600}
ROLLUP_SCHEMA_NAME = "lake/rollup"


@functools.cache
def rollup_schema() -> pa.Schema:
    return arrow_schema(ROLLUP_SCHEMA_NAME)


_ATTRS = """arg_max(host_name, ts) AS host_name, arg_max(host_groups, ts) AS host_groups,
            arg_max(key, ts) AS key, arg_max(item_name, ts) AS item_name, arg_max(units, ts) AS units,
            arg_max(value_type, ts) AS value_type"""


def _sql(bucket: int, with_trends: bool) -> str:
    numeric = ", ".join(str(t) for t in NUMERIC_TYPES)
    raw = f"""
        SELECT source, host, itemid, (clock // {bucket}) * {bucket} AS bucket, {_ATTRS},
               min(value) AS min, max(value) AS max, sum(value) AS sum, count(value) AS count,
               arg_max(value, ts) AS last,
               min(value_uint) AS min_uint, max(value_uint) AS max_uint,
               CAST(sum(CAST(value_uint AS HUGEINT)) AS DECIMAL(38, 0)) AS sum_uint,
               arg_max(value_uint, ts) AS last_uint
        FROM (SELECT *, clock * 1000000000 + ns AS ts FROM points
              WHERE resolution = 'raw' AND value_type IN ({numeric}) AND value IS NOT NULL)
        GROUP BY source, host, itemid, bucket"""
    if not with_trends:
        return raw + " ORDER BY host, itemid, bucket"
    trends = f"""
        SELECT source, host, itemid, (clock // {bucket}) * {bucket} AS bucket, {_ATTRS},
               min(value_min) AS min, max(value_max) AS max, sum(value * value_count) AS sum,
               sum(value_count)::BIGINT AS count, arg_max(value, ts) AS last,
               NULL::UBIGINT AS min_uint, NULL::UBIGINT AS max_uint, NULL::DECIMAL(38, 0) AS sum_uint,
               NULL::UBIGINT AS last_uint
        FROM (SELECT *, clock * 1000000000 + ns AS ts FROM points
              WHERE resolution = '1h' AND value_type IN ({numeric}) AND value_count > 0)
        GROUP BY source, host, itemid, bucket"""
    return f"""
        WITH raw AS ({raw}), trend AS ({trends})
        SELECT * FROM raw
        UNION ALL
        SELECT * FROM trend t WHERE NOT EXISTS
            (SELECT 1 FROM raw r WHERE r.source = t.source AND r.host = t.host AND r.itemid = t.itemid
                                   AND r.bucket = t.bucket)
        ORDER BY host, itemid, bucket"""


def rollup(points: pa.Table | Path, resolution: str, *, memory_limit: str | None = None) -> pa.Table:
    """The rollup of `points` (an Arrow table, or a Parquet file of points too big for memory) at
    resolution '5m' or '1h', in the lake/rollup schema, sorted by (host, itemid, bucket)."""
    import duckdb

    bucket = BUCKET_SECONDS[resolution]
    schema = rollup_schema()
    if isinstance(points, pa.Table) and points.num_rows == 0:
        return schema.empty_table()
    con = duckdb.connect(config={"threads": 2, **({"memory_limit": memory_limit} if memory_limit else {})})
    try:
        if isinstance(points, pa.Table):
            con.register("points", points)
        else:
            con.execute(f"CREATE VIEW points AS SELECT * FROM read_parquet({_quote(str(points))})")
        result = con.sql(_sql(bucket, with_trends=resolution == "1h")).to_arrow_table()
    finally:
        con.close()
    return result.select(schema.names).cast(schema)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
