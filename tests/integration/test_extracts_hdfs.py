"""Built extracts are copied into an HDFS folder (real HDFS minicluster over WebHDFS) when
MONETL_EXTRACTS_HDFS_URL is set; a second copy replaces the first."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from etl.extracts.publish import copy_to_hdfs
from etl.lake.storage import open_storage

pytestmark = pytest.mark.integration


def test_copy_to_hdfs_replaces_files(settings, hdfs_service, tmp_path):
    folder = f"/monetltest-extracts-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(settings, extracts_hdfs_url=f"webhdfs://127.0.0.1:{settings.hdfs_http_port}{folder}")
    hyper = tmp_path / "capacity.hyper"
    summary = tmp_path / "summary.html"
    summary.write_text("<html>first</html>", encoding="utf-8")
    hyper.write_bytes(b"\x00hyper-bytes" * 1000)
    storage = open_storage(cfg, lake_url=cfg.extracts_hdfs_url)
    assert storage.root == folder  # the cleanup below removes exactly this test's folder
    try:
        lines = copy_to_hdfs(cfg, [hyper, summary])
        assert len(lines) == 2 and all(folder in line for line in lines)
        assert storage.read_bytes("capacity.hyper") == hyper.read_bytes()
        summary.write_text("<html>second</html>", encoding="utf-8")
        copy_to_hdfs(cfg, [summary])
        assert storage.read_bytes("summary.html") == b"<html>second</html>"
        assert sorted(storage.list("")) == ["capacity.hyper", "summary.html"]   # no upload left aside
    finally:
        storage.delete("")


def test_extracts_build_from_a_lake_on_hdfs(settings, hdfs_service, tmp_path):
    """The same lake layout on HDFS: partitions published through WebHDFS, files fetched for DuckDB."""
    import datetime as dt

    import extracts_lake
    from etl.extracts.build import build, lake_report_days

    folder = f"/monetltest-extracts-lake-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(settings, home=tmp_path, lake_url=f"webhdfs://127.0.0.1:{settings.hdfs_http_port}{folder}",
                              extracts_dir=str(tmp_path / "extracts"), report_tz="Asia/Shanghai",
                              extracts_hdfs_url="", tableau_server_url="")
    storage = open_storage(cfg)
    assert storage.root == folder
    try:
        extracts_lake.standard_lake(cfg, dt.date(2026, 11, 23))
        assert lake_report_days(cfg) == [dt.date(2026, 11, 23), dt.date(2026, 11, 24), dt.date(2026, 11, 25)]
        (capacity,) = build(cfg, "capacity", [dt.date(2026, 11, 24)])
        # Every host and capacity item of the fixture (3 x 6) on a day fully inside the lake.
        assert capacity.written["fact_capacity_daily"] == 18
        assert capacity.rows["dim_host"] == 3
    finally:
        storage.delete("")
