import pyarrow as pa
import pytest

from etl.errors import VerificationError
from etl.lake import manifest
from etl.schema import point_schema


def _points(n=6):
    return pa.Table.from_pylist([
        dict(source="zabbix", host="h", host_name=None, host_groups=None, itemid=100 + i % 2, key="k",
             item_name=None, units=None, value_type=0 if i % 3 else 4,
             value=float(i) if i % 3 else None, value_text=None if i % 3 else f"文本 {i}",
             clock=1_700_000_000 + i, ns=i * 7, resolution="raw", value_min=None, value_max=None,
             value_count=None, tags=None, run_id="r") for i in range(n)], schema=point_schema())


def _sum(table):
    return manifest.checksum_int(table, manifest.POINT_CHECKSUM_COLUMNS)


def test_checksum_ignores_row_order_and_batching():
    points = _points()
    assert _sum(points) == _sum(points.take([5, 3, 1, 0, 2, 4]))
    halves = manifest.combine(_sum(points.slice(0, 2)), _sum(points.slice(2)))
    assert halves == _sum(points)


@pytest.mark.parametrize("column,new", [("value", 1.0000000000000002), ("ns", 1), ("clock", 1_700_000_099),
                                        ("itemid", 999), ("value_text", "文本 x"), ("resolution", "1h")])
def test_checksum_sees_any_change_of_a_point(column, new):
    points = _points()
    row = 1 if column != "value_text" else 0
    values = points[column].to_pylist()
    values[row] = new
    changed = points.set_column(points.schema.get_field_index(column), column,
                                pa.array(values, points.schema.field(column).type))
    assert _sum(changed) != _sum(points)


def test_duplicated_row_changes_the_checksum():
    points = _points()
    assert _sum(pa.concat_tables([points, points.slice(0, 1)])) != _sum(points)


def test_rows_per_itemid():
    assert manifest.rows_per_itemid(_points()) == {"100": 3, "101": 3}


def test_manifest_round_trip_and_schema_check():
    built = manifest.build("points", {"source": "zabbix", "date": "2026-11-01"}, "run-1", "point", 6, 12345,
                           [{"name": "part-00000.parquet", "rows": 6, "bytes": 10}], per_item={"100": 6})
    assert manifest.loads(manifest.dumps(built), "test") == built
    broken = dict(built, checksum="not-hex")
    with pytest.raises(VerificationError, match="manifest"):
        manifest.loads(manifest.dumps(broken), "test")
    with pytest.raises(VerificationError, match="not JSON"):
        manifest.loads(b"{half", "test")


def test_text_hash_depends_on_content_only_not_on_buffer_position():
    texts = pa.array(["a", "bc", None, "中文 ok", "", "bc"])
    full = manifest.column_hash(texts)
    assert list(manifest.column_hash(texts.slice(1))) == list(full[1:])
    assert full[1] == full[5] and full[0] != full[1] and full[4] != full[2]
    assert list(manifest.column_hash(texts.cast(pa.large_string()))) == list(full)
    chunked = pa.chunked_array([texts.slice(0, 2), texts.slice(2)])
    assert list(manifest.column_hash(chunked)) == list(full)
    assert manifest.column_hash(pa.array(["ab"]))[0] != manifest.column_hash(pa.array(["ba"]))[0]
