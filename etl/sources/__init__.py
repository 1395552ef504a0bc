"""Metric sources (Zabbix API/DB, KCMM DB/CSV) producing point record batches; see base.py."""

from etl.sources.base import (MAX_BATCH_ROWS, ItemCatalog, ItemMeta, PointSource, build_points, open_source,
                              points_from_rows, rebatch)

__all__ = ["MAX_BATCH_ROWS", "ItemCatalog", "ItemMeta", "PointSource", "build_points", "open_source",
           "points_from_rows", "rebatch"]
