"""What extracts read from the lake, through the lake's own layout, storage and reader (etl.lake):
the Parquet files of published points/rollup partitions (scanned by DuckDB in place: only the
columns and row groups a query needs, in constant memory), log findings as Arrow tables, and which
days are published. Works the same on a local lake and on HDFS (files fetched to a scratch folder)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa

from etl.config import Settings
from etl.window import Window

DATASET_DIRS = {"raw": "points", "5m": "rollup_5m", "1h": "rollup_1h"}


def read_findings(settings: Settings, job: str, window: Window, columns: list[tuple[str, pa.DataType]]) -> pa.Table:
    """Findings of one log job from the partitions the window touches (a finding's partition is its
    first_seen day, a metric row's its bucket; widened by a day each side for partitions written
    before findings were dated by event time, under their job window's start day), or an empty
    table of the expected columns when the job wrote none."""
    from etl.lake import read_findings as lake_read_findings

    table = lake_read_findings(settings, job, window.widened(dt.timedelta(days=1), dt.timedelta(days=1)))
    if table.num_columns == 0:
        return pa.schema(columns).empty_table()
    return table


def partition_paths(settings: Settings, resolution: str, source: str, days: list[dt.date],
                    scratch: Path) -> list[str]:
    """Local paths of the data files of the published partitions of these UTC days: the files
    themselves on a local lake, copies in `scratch` (fetched through the lake storage) on HDFS."""
    from etl.lake import layout
    from etl.lake.reader import partition_files
    from etl.lake.storage import open_storage

    storage = open_storage(settings)
    paths = []
    for day in days:
        partition = (layout.points_partition(source, day) if resolution == "raw"
                     else layout.rollup_partition(resolution, source, day))
        for rel in partition_files(storage, partition):
            local = storage.local_path(rel)
            if local is None:
                # Named by the file's lake path, so later spans of the same build reuse the copy.
                local = scratch / (hashlib.sha1(rel.encode("utf-8")).hexdigest()[:20] + ".parquet")
                if not local.exists():
                    storage.download(rel, local)
            paths.append(str(local))
    return paths


def lake_days(settings: Settings, resolution: str, source: str) -> list[dt.date]:
    """UTC days with a published partition for a source, oldest first."""
    from etl.lake.reader import published_days
    from etl.lake.storage import open_storage

    return sorted(published_days(open_storage(settings), source, DATASET_DIRS[resolution]))
