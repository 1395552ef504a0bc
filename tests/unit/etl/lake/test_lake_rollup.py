import pyarrow as pa

from etl.lake.rollup import rollup, rollup_schema
from etl.schema import point_schema

T0 = 1_700_000_100 - 1_700_000_100 % 3600  # an hour boundary


def _point(itemid, clock, value, ns=0, value_type=0, resolution="raw", **extra):
    row = dict(source="zabbix", host="h1", host_name="主机", host_groups=["g"], itemid=itemid, key="k",
               item_name="n", units="%", value_type=value_type, value=value, value_text=None, clock=clock, ns=ns,
               resolution=resolution, value_min=None, value_max=None, value_count=None, tags=None, run_id="r")
    row.update(extra)
    return row


def test_five_minute_buckets_by_hand():
    points = pa.Table.from_pylist([
        _point(1, T0 + 10, 4.0), _point(1, T0 + 10, 2.0, ns=5), _point(1, T0 + 299, 1.0),
        _point(1, T0 + 300, 7.0),
        _point(2, T0 + 1, None, value_type=4, value_text="text is not rolled up"),
    ], schema=point_schema())
    out = rollup(points, "5m")
    assert out.schema == rollup_schema()
    rows = out.to_pylist()
    assert [(r["itemid"], r["bucket"], r["min"], r["max"], r["sum"], r["count"], r["last"]) for r in rows] == [
        (1, T0, 1.0, 4.0, 7.0, 3, 1.0),
        (1, T0 + 300, 7.0, 7.0, 7.0, 1, 7.0),
    ]
    assert rows[0]["host_name"] == "主机" and rows[0]["host_groups"] == ["g"]


def test_last_is_the_latest_by_clock_then_ns():
    points = pa.Table.from_pylist([_point(1, T0 + 5, 9.0, ns=2), _point(1, T0 + 5, 3.0, ns=1)],
                                  schema=point_schema())
    assert rollup(points, "1h")["last"].to_pylist() == [9.0]


def test_trends_fill_only_hours_without_raw_points_and_never_5m():
    points = pa.Table.from_pylist([
        _point(1, T0 + 60, 10.0),
        _point(1, T0, 50.0, resolution="1h", value_min=1.0, value_max=99.0, value_count=60),  # covered by raw
        _point(1, T0 + 3600, 20.0, resolution="1h", value_min=5.0, value_max=30.0, value_count=60),
    ], schema=point_schema())
    hourly = rollup(points, "1h").to_pylist()
    assert [(r["bucket"], r["min"], r["max"], r["sum"], r["count"], r["last"]) for r in hourly] == [
        (T0, 10.0, 10.0, 10.0, 1, 10.0),
        (T0 + 3600, 5.0, 30.0, 1200.0, 60, 20.0),
    ]
    assert rollup(points, "5m")["count"].to_pylist() == [1]


def test_empty_input_gives_empty_rollup():
    assert rollup(point_schema().empty_table(), "5m").num_rows == 0


def test_unsigned_aggregates_are_exact_near_2_to_the_64():
    big = [2**53 + 1, 2**63 - 1, 2**64 - 2, 2**64 - 1]
    points = pa.Table.from_pylist(
        [_point(3, T0 + i, float(v), value_type=3, value_uint=v) for i, v in enumerate(big)]
        # the item was float before an item.update: its float point has no value_uint
        + [_point(3, T0 + 10, 0.5, value_type=0)], schema=point_schema())
    (row,) = rollup(points, "5m").to_pylist()
    assert (row["min_uint"], row["max_uint"], row["last_uint"]) == (2**53 + 1, 2**64 - 1, 2**64 - 1)
    assert row["sum_uint"] == sum(big)  # > 2^65: no uint64 overflow
    assert row["count"] == 5 and row["min"] == 0.5  # the float columns still cover every numeric point
    float_only = rollup(pa.Table.from_pylist([_point(4, T0, 1.5)], schema=point_schema()), "5m").to_pylist()[0]
    assert float_only["sum_uint"] is None and float_only["max_uint"] is None
