"""What extracts read from the lake, through the lake's own reader (etl.lake): points (raw),
rollups (5m, 1h) and log findings as Arrow tables, plus which days are published. Works the same
on a local lake and on HDFS."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from etl.config import Settings
from etl.window import Window

DATASET_DIRS = {"raw": "points", "5m": "rollup_5m", "1h": "rollup_1h"}


def read_points(settings: Settings, source: str, window: Window, resolution: str) -> pa.Table:
    """Points (resolution raw) or rollup rows (5m, 1h) of one source whose clock/bucket is in the window."""
    from etl.lake import read_points as lake_read_points

    return lake_read_points(settings, source, window, resolution=resolution)


def read_findings(settings: Settings, job: str, window: Window, columns: list[tuple[str, pa.DataType]]) -> pa.Table:
    """Findings of one log job from the partitions the window touches (widened by a day each side,
    since a finding's partition is its job-window day while reports bucket by first_seen), or an
    empty table of the expected columns when the job wrote none."""
    from etl.lake import read_findings as lake_read_findings

    table = lake_read_findings(settings, job, window.widened(dt.timedelta(days=1), dt.timedelta(days=1)))
    if table.num_columns == 0:
        return pa.schema(columns).empty_table()
    return table


def lake_days(settings: Settings, resolution: str, source: str) -> list[dt.date]:
    """UTC days with a published partition for a source, oldest first."""
    from etl.lake.reader import published_days
    from etl.lake.storage import open_storage

    return sorted(published_days(open_storage(settings), source, DATASET_DIRS[resolution]))
