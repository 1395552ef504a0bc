"""What the two Zabbix modes (API, DB) keep alike: the options they are made with, the clock that
decides history vs trends, the catalog (read once per source object), the items grouped for
planning, and how a bad value is quarantined."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from etl.config import Settings
from etl.errors import ConfigError
import numpy as np

from etl.schema import NUMERIC_TYPES
from etl.sources.base import RAW, ItemCatalog
from etl.sources.zabbix_common import Span, chunks, history_cutoff, plan_spans
from etl.sources.zabbix_meta import VALUE_TYPES as HISTORY_VALUE_TYPES, Retention


class ZabbixSource:
    name = "zabbix"

    def __init__(self, settings: Settings, hosts: list[str] | None, itemids: list[int] | None, max_batch_rows: int,
                 use_trends: str, now: dt.datetime | None):
        if use_trends not in ("auto", "never", "only"):
            raise ConfigError(f"use_trends={use_trends!r}: expected auto, never or only")
        self.settings = settings
        self.hosts = list(hosts) if hosts else None
        self.itemids = [int(i) for i in itemids] if itemids else None
        self.max_batch_rows = max_batch_rows
        self.use_trends = use_trends
        self._now = now
        self._catalog: tuple[ItemCatalog, dict[int, Retention]] | None = None
        self._catalog_lock = threading.Lock()

    def catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        # one load even when the overlap's counts and the extraction ask at once (etl.ingest)
        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = self._load_catalog()
        return self._catalog

    def _load_catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        raise NotImplementedError

    @staticmethod
    def _seconds(window) -> tuple[int, int]:
        """The window as whole epoch seconds [start_s, end_s): plans and spans are in seconds."""
        return window.start_s, math.ceil(window.end.timestamp())

    def _now_s(self) -> int:
        return int((self._now or dt.datetime.now(dt.timezone.utc)).timestamp())

    def _groups(self) -> dict[tuple[int, int | None], list[int]]:
        """Items grouped by (value_type, history cutoff): one plan per group."""
        catalog, retention = self.catalog()
        now_s = self._now_s()
        groups: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        cutoffs: dict[int | None, int | None] = {}
        for itemid, value_type in zip(catalog.itemids.tolist(), catalog.value_types.tolist()):
            history_s = retention[itemid].history_s
            if history_s not in cutoffs:
                cutoffs[history_s] = history_cutoff(history_s, now_s)
            groups[(value_type, cutoffs[history_s])].append(itemid)
        return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)))

    @staticmethod
    def earlier_types(value_type: int) -> tuple[int, ...]:
        """History tables an item of `value_type` may also have rows in: after item.update changed
        its type, what it wrote before stays in the old type's table (Zabbix neither moves nor,
        with the housekeeper off, deletes it). Read for the item's raw spans only; trends of an
        earlier type are not read."""
        return tuple(t for t in HISTORY_VALUE_TYPES if t != value_type)

    def _earlier_plans(self, raw_spans: dict, per_request: int) -> Iterator[tuple[int, str, Span, list[int]]]:
        """Plans reading the other history tables: raw_spans maps each raw Span to the
        (current value_type, itemids) groups planned over it. Per span and table, one plan per
        `per_request` items of every group whose current type is another one (so groups sharing
        a span share the requests: nearly all of them find nothing)."""
        for span, groups in raw_spans.items():
            for table_type in HISTORY_VALUE_TYPES:
                ids = sorted(i for value_type, group in groups if table_type in self.earlier_types(value_type)
                             for i in group)
                for chunk in chunks(ids, per_request):
                    yield table_type, RAW, span, chunk

    # -- overlap settling (etl.overlap_check) ------------------------------------------------------
    def table_types(self, itemids: np.ndarray) -> np.ndarray:
        """The history table (value type) `raw_count` counts for each item; -1 for one not in the catalog."""
        catalog, _ = self.catalog()
        return catalog.value_types_of(itemids)

    def raw_count(self, window) -> int | None:
        """History rows of the items in scope with clock in `window`, each item counted in the table of
        its current value type (earlier-type rows are not counted: see table_types); None when part of
        the window is read from trends for some item (the count would not be comparable)."""
        start_s, end_s = self._seconds(window)
        tasks = []
        for (value_type, cutoff), ids in self._groups().items():
            for resolution, span in plan_spans(start_s, end_s, cutoff, value_type in NUMERIC_TYPES, self.use_trends):
                if resolution != RAW:
                    return None
                tasks.append((value_type, span, ids))
        workers = max(1, getattr(self, "parallel", 1))
        if workers == 1 or len(tasks) < 2:
            return sum(self._count_rows(*task) for task in tasks)
        with ThreadPoolExecutor(workers, thread_name_prefix="zabbix-count") as pool:
            return sum(pool.map(lambda task: self._count_rows(*task), tasks))

    def _count_rows(self, value_type: int, span: Span, itemids: list[int]) -> int:
        raise NotImplementedError

    def _on_bad(self, quarantine) -> Callable[[dict, str], None]:
        catalog, _ = self.catalog()

        def on_bad(record: dict, reason: str) -> None:
            # Traceable to its source row and keyed like a point: source, host and key with the raw value.
            meta = catalog.items.get(int(record["itemid"]))
            record = {"source": self.name, "host": meta.host if meta else None, "key": meta.key if meta else None,
                      "resolution": "raw", **record}
            quarantine.add(record, reason, ref=f"zabbix item {record['itemid']} @ {record['clock']}.{record['ns']}",
                           stage="extract")
        return on_bad
