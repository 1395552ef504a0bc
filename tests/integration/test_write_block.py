"""Writers meeting an index write block (`index.blocks.write`, what compaction sets on a day index
between its scan and the delete) on the real Elasticsearch: an ingest waits until the block is
lifted and loads everything; past `MONETL_ES_BLOCK_WAIT_SECONDS` it fails naming the index, its
CSV rows stay unread, and the re-run after the block loads them all. Oracle: the CSV's data lines
and a direct count."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import threading
from pathlib import Path

import pytest

from etl import ingest
from etl.errors import IndexWriteBlocked
from etl.schema import points_index
from etl.search.client import es_client
from etl.search.templates import apply_points_template
from etl.sources import open_source
from etl.sources.kcmm_sample import write_csv_export
from etl.window import Window

pytestmark = pytest.mark.integration

PREFIX = "monetltest-wblock"
UTC = dt.timezone.utc
WINDOW = Window(dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC), dt.datetime(2026, 11, 20, 10, 30, tzinfo=UTC))
INDEX = points_index(PREFIX, "kcmm", WINDOW.start.date())


def _lines(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.csv"):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            total += sum(1 for row in list(csv.reader(fh))[1:] if row)
    return total


def _block(client, on: bool) -> None:
    client.indices.put_settings(index=INDEX, settings={"index.blocks.write": on})


def _count(client) -> int:
    client.indices.refresh(index=INDEX)
    return int(client.count(index=INDEX)["count"])


@pytest.fixture
def env(settings, elasticsearch_service, tmp_path):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX, quarantine_dir=str(tmp_path / "q"),
                              kcmm_csv_dir=str(tmp_path / "inbox"))
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    apply_points_template(client, cfg)
    client.indices.create(index=INDEX)
    write_csv_export(cfg.kcmm_csv_dir, WINDOW.start, WINDOW.end, machine_count=2, machine_offset=120,
                     done_marker=True)
    yield cfg, client, tmp_path
    _block(client, False)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def _source(cfg, tmp_path):
    return open_source("kcmm", cfg, "csv", csv_dir=cfg.kcmm_csv_dir, state_path=str(tmp_path / "state.json"),
                       settle_seconds=0)


def test_an_ingest_waits_out_a_write_block_and_loads_everything(env):
    cfg, client, tmp_path = env
    expected = _lines(Path(cfg.kcmm_csv_dir))
    _block(client, True)
    lift = threading.Timer(4.0, _block, args=(client, False))
    lift.start()
    try:
        with _source(cfg, tmp_path) as source:
            summary = ingest.run(cfg, source, WINDOW, overlap=dt.timedelta(0))
    finally:
        lift.join()
    assert summary.ok and summary.points_quarantined == 0
    assert _count(client) == expected == summary.points_loaded


def test_a_block_longer_than_the_wait_fails_naming_the_index_and_loses_nothing(env):
    cfg, client, tmp_path = env
    expected = _lines(Path(cfg.kcmm_csv_dir))
    short = dataclasses.replace(cfg, es_block_wait_seconds=2)
    _block(client, True)
    with _source(short, tmp_path) as source, pytest.raises(IndexWriteBlocked, match=f"index {INDEX} is write-blocked"):
        ingest.run(short, source, WINDOW, overlap=dt.timedelta(0))
    _block(client, False)
    assert _count(client) == 0
    with _source(cfg, tmp_path) as source:
        rerun = ingest.run(cfg, source, WINDOW, overlap=dt.timedelta(0))
    assert rerun.ok and rerun.points_read == expected and _count(client) == expected
