import datetime as dt

import pytest

from etl.errors import ConfigError, StoreError
from etl.lake import layout
from etl.lake.storage import LocalStorage

NASTY = ["../x", "a/b", "with space", "交易网关", "..", ".", ".hidden", "_staging", "50%", "a=b", "c:d", "x\\y"]


@pytest.mark.parametrize("value", NASTY)
def test_value_is_one_safe_segment_and_decodes_back(value):
    segment = layout.encode_value(value)
    assert "/" not in segment and "\\" not in segment and " " not in segment
    assert not segment.startswith(".")
    assert segment not in (".", "..")
    assert layout.decode_value(segment) == value


def test_distinct_values_never_share_a_segment():
    segments = {layout.encode_value(v) for v in NASTY}
    assert len(segments) == len(NASTY)


def test_partition_paths_stay_under_their_dataset():
    path = layout.points_partition("../x", dt.date(2026, 11, 1))
    assert path == "points/source=%2E.%2Fx/date=2026-11-01"
    assert all(part not in ("..", ".") for part in path.split("/"))
    assert layout.findings_partition("a/b", "2026-11-02") == "findings/job=a%2Fb/date=2026-11-02"
    assert layout.rollup_partition("5m", "交易", dt.date(2026, 1, 2)).startswith("rollup_5m/source=%E4%BA%A4")


def test_empty_value_and_unknown_rollup_are_refused():
    with pytest.raises(ConfigError):
        layout.encode_value("")
    with pytest.raises(ConfigError):
        layout.rollup_partition("10m", "zabbix", dt.date(2026, 1, 1))


def test_only_parquet_files_not_underscored_are_data():
    assert layout.is_data_file("part-00000.parquet")
    assert not layout.is_data_file("_manifest.json")
    assert not layout.is_data_file("_part.parquet")
    assert not layout.is_data_file(".part-00000.parquet.crc")


def test_date_segments():
    assert layout.parse_date_segment("date=2026-11-01") == dt.date(2026, 11, 1)
    assert layout.parse_date_segment("date=garbage") is None
    assert layout.parse_date_segment("_staging") is None


def test_local_storage_refuses_paths_leaving_the_root(tmp_path):
    storage = LocalStorage(tmp_path / "lake")
    with pytest.raises(StoreError):
        storage.write_bytes("../escape", b"x")
    assert not (tmp_path / "escape").exists()


def test_local_rename_refuses_to_merge_into_an_existing_partition(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.write_bytes("a/f", b"1")
    storage.write_bytes("b/g", b"2")
    with pytest.raises(StoreError):
        storage.rename("a", "b")
    storage.rename("a", "c/d")
    assert storage.read_bytes("c/d/f") == b"1" and not storage.exists("a")
