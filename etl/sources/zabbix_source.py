"""What the two Zabbix modes (API, DB) keep alike: the options they are made with, the clock that
decides history vs trends, the catalog (read once per source object), the items grouped for
planning, and how a bad value is quarantined."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Callable, Iterator

from etl.config import Settings
from etl.errors import ConfigError
from etl.sources.base import RAW, ItemCatalog
from etl.sources.zabbix_common import Span, chunks, history_cutoff
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

    def catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
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
        for itemid, meta in catalog.items.items():
            cutoff = history_cutoff(retention[itemid].history_s, now_s)
            groups[(meta.value_type, cutoff)].append(itemid)
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
