"""Pure parts of source fidelity: exact unsigned parsing (API strings, DB numeric(20) text, Python
Decimals), the reasons for values outside uint64, log fields, and points that keep the value type
of the table they came from."""

import decimal

import numpy as np
import pyarrow as pa
import pytest

from etl.sources.base import ItemCatalog, ItemMeta, build_points, points_from_rows
from etl.sources.zabbix_common import history_batch, history_columns, parse_uint, trend_batch, uint_values

U64 = 2**64 - 1
EXACT = [0, 1, 2**53 + 1, 2**63 - 1, 2**64 - 2, U64]


def catalog():
    return ItemCatalog("zabbix", [ItemMeta(1, "h", "u", 3), ItemMeta(2, "h", "l", 2), ItemMeta(3, "h", "f", 0)])


@pytest.mark.parametrize("given", [
    [str(v) for v in EXACT],                              # API strings
    pa.array([str(v) for v in EXACT], pa.string()),       # DB fast path (COPY text)
    [decimal.Decimal(v) for v in EXACT],                  # DB portable path (numeric -> Decimal)
    pa.array(EXACT, pa.uint64()),
])
def test_unsigned_values_are_exact_whatever_the_input_form(given):
    exact, bad = uint_values(given)
    assert bad == [] and exact.type == pa.uint64() and exact.to_pylist() == EXACT


@pytest.mark.parametrize("text,reason", [
    ("-1", "unsigned value outside 0..18446744073709551615: '-1'"),
    (str(2**64), f"unsigned value outside 0..18446744073709551615: '{2**64}'"),
    ("99999999999999999999", "unsigned value outside 0..18446744073709551615: '99999999999999999999'"),
    ("1.5", "unsigned value not an integer: '1.5'"),
    ("abc", "not a number: 'abc'"),
    ("NaN", "not a number: 'NaN'"),
])
def test_values_outside_uint64_get_a_reason(text, reason):
    assert parse_uint(text) == (None, reason)
    exact, bad = uint_values(["7", text])
    assert exact.to_pylist() == [7, None] and bad == [(1, reason)]


def test_integral_decimal_text_is_accepted():
    assert parse_uint("42.0") == (42, None)


def test_history_batch_quarantines_bad_unsigned_and_keeps_the_rest_exact():
    bad = []
    batch = history_batch(catalog(), "r", 3, [1, 1, 1], [100, 101, 102], [0, 0, 0], ["-5", str(U64), str(2**53 + 1)],
                          (0, 10**20), lambda record, reason: bad.append((record, reason)))
    assert batch.column("value_uint").to_pylist() == [U64, 2**53 + 1]
    assert batch.column("value").to_pylist() == [float(U64), float(2**53 + 1)]
    assert [(r["clock"], r["value"]) for r, _ in bad] == [(100, "-5")]
    assert bad[0][1].startswith("unsigned value outside")


def test_log_fields_from_api_strings_and_db_arrays():
    api_log = {"log_timestamp": ["1700000000", "0"], "log_source": ["Security", ""], "log_severity": ["7", "0"],
               "log_eventid": ["4625", "0"]}
    db_log = {"log_timestamp": pa.array([1700000000, 0]), "log_source": pa.array(["Security", ""]),
              "log_severity": pa.array([7, 0]), "log_eventid": pa.array([4625, 0])}
    for log in (api_log, db_log):
        batch = history_batch(catalog(), "r", 2, [2, 2], [100, 101], [1, 2], ["a", "b"], (0, 10**20),
                              lambda *_: pytest.fail("nothing is bad"), log)
        rows = batch.to_pylist()
        assert [(r["log_timestamp"], r["log_source"], r["log_severity"], r["log_eventid"]) for r in rows] == \
            [(1700000000, "Security", 7, 4625), (0, "", 0, 0)]


def test_a_point_keeps_the_type_of_the_table_it_came_from():
    # item 3 is float now; a row read from history_uint stays unsigned and exact, and a log row from
    # history_log keeps its log fields
    cols, bad = history_columns([3], [100], [0], [str(U64)], 3)
    batch = build_points(catalog(), run_id="r", **cols)
    (row,) = batch.to_pylist()
    assert bad == [] and (row["value_type"], row["value_uint"], row["key"]) == (3, U64, "f")
    cols, _ = history_columns([3], [100], [0], ["line"], 2, {"log_source": ["app"], "log_eventid": ["9"]})
    (row,) = build_points(catalog(), run_id="r", **cols).to_pylist()
    assert (row["value_type"], row["value_text"], row["value"], row["log_source"], row["log_eventid"]) == \
        (2, "line", None, "app", 9)


def test_fields_of_other_value_types_stay_null():
    batch = build_points(catalog(), itemid=[3, 1], clock=[1, 1], ns=[0, 0], run_id="r", value=[1.0, 2.0],
                         value_uint=[5, 2], log_source=["x", "y"])
    rows = batch.to_pylist()
    assert [(r["value_uint"], r["log_source"]) for r in rows] == [(None, None), (2, None)]


def test_float_only_sources_get_value_uint_only_where_the_float_is_exact():
    batch = points_from_rows(catalog(), [{"itemid": 1, "clock": 1, "value": 1.0},
                                         {"itemid": 1, "clock": 2, "value": float(2**53)},
                                         {"itemid": 1, "clock": 3, "value": float(2**60)},
                                         {"itemid": 1, "clock": 4, "value": 0.5}], "r")
    assert batch.column("value_uint").to_pylist() == [1, 2**53, None, None]


def test_unsigned_trends_carry_the_exact_average():
    batch = trend_batch(catalog(), "r", [1], [3600], [60], [0.0], pa.array([str(U64)]), [float(U64)], (0, 10**20), 3)
    (row,) = batch.to_pylist()
    assert (row["resolution"], row["value_uint"], row["value_count"]) == ("1h", U64, 60)
    assert np.isclose(row["value"], float(U64))
