import datetime as dt

import pytest

from etl.config import Settings
from etl.errors import ConfigError
from etl.schema import point_schema
from etl.sources.base import (ItemCatalog, ItemMeta, bucket_starts, build_points, open_source, points_from_rows,
                              rebatch)
from etl.window import Window


def _catalog():
    return ItemCatalog("zabbix", [
        ItemMeta(10, "web01", "system.cpu.util", 0, host_name="交易前置01", host_groups=("Linux", "Trading"),
                 item_name="CPU", units="%", tags=(("component", "cpu"), ("env", "prod"))),
        ItemMeta(7, "web01", "log[/var/log/app.log]", 2, item_name="app log"),
        ItemMeta(3, "db01", "proc.num", 3),
    ])


def test_points_carry_item_metadata_and_route_values_by_type():
    batch = points_from_rows(_catalog(), [
        {"itemid": 7, "clock": 100, "ns": 5, "value_text": "ERROR x"},
        {"itemid": 10, "clock": 101, "ns": 999_999_999, "value": 12.5},
        {"itemid": 3, "clock": 102, "ns": 0, "value": 42.0, "value_text": "ignored"},
    ], run_id="r1")
    assert batch.schema == point_schema()
    rows = batch.to_pylist()
    assert [r["itemid"] for r in rows] == [7, 10, 3]
    assert rows[0]["value"] is None and rows[0]["value_text"] == "ERROR x" and rows[0]["value_type"] == 2
    assert rows[1]["value"] == 12.5 and rows[1]["ns"] == 999_999_999 and rows[1]["host_name"] == "交易前置01"
    assert rows[1]["host_groups"] == ["Linux", "Trading"]
    assert rows[1]["tags"] == [{"tag": "component", "value": "cpu"}, {"tag": "env", "value": "prod"}]
    assert rows[2]["value_text"] is None and rows[2]["value"] == 42.0
    assert {r["source"] for r in rows} == {"zabbix"} and {r["run_id"] for r in rows} == {"r1"}
    assert {r["resolution"] for r in rows} == {"raw"}


def test_unknown_itemid_is_refused_not_mislabelled():
    with pytest.raises(ValueError, match="99"):
        build_points(_catalog(), itemid=[99], clock=[1], ns=[0], run_id="r", value=[1.0])


def test_empty_input_gives_an_empty_conforming_batch():
    batch = build_points(_catalog(), itemid=[], clock=[], ns=[], run_id="r")
    assert batch.num_rows == 0 and batch.schema == point_schema()


def test_rebatch_bounds_size_and_keeps_every_row_in_order():
    cat = _catalog()
    parts = [points_from_rows(cat, [{"itemid": 10, "clock": i * 10 + j, "ns": 0, "value": float(j)}
                                    for j in range(n)], "r") for i, n in enumerate([3, 0, 5, 1])]
    out = list(rebatch(parts, max_rows=4))
    assert [b.num_rows for b in out] == [4, 4, 1]
    clocks = [c for b in out for c in b.column("clock").to_pylist()]
    assert clocks == [0, 1, 2, 20, 21, 22, 23, 24, 30]


def test_bucket_starts_cover_the_window_on_epoch_aligned_boundaries():
    w = Window.parse("2026-11-25T00:30Z", "2026-11-25T03:00Z")
    starts = bucket_starts(w, dt.timedelta(hours=1))
    assert [s.hour for s in starts] == [0, 1, 2]


def test_unknown_source_or_mode_is_a_config_error():
    with pytest.raises(ConfigError):
        open_source("prometheus", Settings())
    with pytest.raises(ConfigError):
        open_source("kcmm", Settings(), mode="api")
