"""Build point record batches for unit tests (in memory, schema from schemas/point.json)."""

from __future__ import annotations

import pyarrow as pa

from etl.schema import point_schema

BASE_CLOCK = 1_795_564_800  # 2026-11-25T00:00:00Z


def point(**overrides) -> dict:
    row = {
        "source": "zabbix", "host": "web01", "host_name": "交易网关 01", "host_groups": ["Linux servers"],
        "itemid": 10001, "key": "system.cpu.util", "item_name": "CPU utilization", "units": "%",
        "value_type": 0, "value": 12.5, "value_text": None, "clock": BASE_CLOCK + 60, "ns": 123456789,
        "resolution": "raw", "value_min": None, "value_max": None, "value_count": None,
        "tags": [{"tag": "component", "value": "cpu"}], "run_id": "test",
    }
    row.update(overrides)
    return row


def batch(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=point_schema())


def with_invalid_utf8(good: pa.RecordBatch, row: int, column: str = "value_text", raw: bytes = b"bad \xff\xfe") -> pa.RecordBatch:
    """The way a source can hand over undecodable bytes without losing the row: a string column whose
    buffer holds them (e.g. pyarrow.csv with check_utf8=False)."""
    values = good.column(column).view(pa.binary()).to_pylist()
    values[row] = raw
    patched = pa.array(values, type=pa.binary()).view(pa.string())
    index = good.schema.get_field_index(column)
    return good.set_column(index, good.schema.field(column), patched)
