"""Zabbix straight from its database (read-only URL `settings.zabbix_db_url`): the bulk backfill
mode. Same points as the API mode (same catalog rules, same retention split into history and
trends), read from history*/trends* with server-side cursors so memory stays bounded, and turned
into Arrow column-wise (one tuple transpose per partition, no per-row dicts)."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import defaultdict
from typing import Iterator, Sequence

from etl.config import Settings
from etl.errors import ConfigError, SourceError
from etl.schema import NUMERIC_TYPES, UINT
from etl.sources.base import HOURLY, MAX_BATCH_ROWS, RAW, ItemCatalog, bucket_starts, rebatch
from etl.sources.zabbix_common import (HISTORY_TABLES, TREND_TABLES, Span, history_batch, history_cutoff,
                                       plan_spans, trend_batch)
from etl.sources.zabbix_meta import Retention, catalog_from_db

log = logging.getLogger(__name__)

# itemids per query: keeps the ANY(array) parameter small while the index (itemid, clock) does the work.
ITEMS_PER_QUERY = 5000

_ITEMS_SQL = """
SELECT i.itemid, i.hostid, h.host, h.name AS host_name, i.key_, i.name, i.units, i.value_type,
       i.history, i.trends
FROM items i JOIN hosts h ON h.hostid = i.hostid
WHERE h.status IN (0, 1) AND h.flags IN (0, 4) AND i.flags IN (0, 4) AND i.value_type IN (0, 1, 2, 3, 4)
"""


def _chunks(seq: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield list(seq[i:i + size])


class ZabbixDbSource:
    name = "zabbix"
    mode = "db"

    def __init__(self, settings: Settings, hosts: list[str] | None = None, itemids: list[int] | None = None,
                 max_batch_rows: int = MAX_BATCH_ROWS, use_trends: str = "auto", db_url: str | None = None,
                 now: dt.datetime | None = None, **_ignored):
        if use_trends not in ("auto", "never", "only"):
            raise ConfigError(f"use_trends={use_trends!r}: expected auto, never or only")
        self.settings = settings
        self.hosts = list(hosts) if hosts else None
        self.itemids = [int(i) for i in itemids] if itemids else None
        self.max_batch_rows = max_batch_rows
        self.use_trends = use_trends
        self._url = db_url or settings.zabbix_db_url.reveal()
        self._now = now
        self._engine = None
        self._catalog: tuple[ItemCatalog, dict[int, Retention]] | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def engine(self):
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self._url, pool_pre_ping=True)
        return self._engine

    def _where(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self._url)
        return f"{url.host}:{url.port}/{url.database} as {url.username}"

    def _connect(self):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.engine.connect().execution_options(postgresql_readonly=True)
        except SQLAlchemyError as exc:
            raise SourceError(f"Zabbix DB {self._where()}: cannot connect: "
                              f"{str(getattr(exc, 'orig', exc)).strip()[:300]}") from None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> "ZabbixDbSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata -----------------------------------------------------------------------------
    def catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        if self._catalog is None:
            self._catalog = self._load_catalog()
        return self._catalog

    def _load_catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        from sqlalchemy import text

        sql, params = _ITEMS_SQL, {}
        if self.hosts:
            sql += " AND h.host = ANY(:hosts)"
            params["hosts"] = self.hosts
        if self.itemids:
            sql += " AND i.itemid = ANY(:itemids)"
            params["itemids"] = self.itemids
        with self._connect() as conn:
            items = [dict(r._mapping) for r in conn.execute(text(sql), params)]
            hostids = sorted({int(r["hostid"]) for r in items})
            itemids = [int(r["itemid"]) for r in items]
            groups = [dict(r._mapping) for r in conn.execute(text(
                "SELECT hg.hostid, g.name FROM hosts_groups hg JOIN hstgrp g ON g.groupid = hg.groupid "
                "WHERE hg.hostid = ANY(:ids)"), {"ids": hostids})]
            item_tags = [dict(r._mapping) for r in conn.execute(text(
                "SELECT itemid, tag, value FROM item_tag WHERE itemid = ANY(:ids)"), {"ids": itemids})]
            host_tags = [dict(r._mapping) for r in conn.execute(text(
                "SELECT hostid, tag, value FROM host_tag WHERE hostid = ANY(:ids)"), {"ids": hostids})]
            hk_history, hk_trends = self._housekeeping(conn)
        catalog, retention = catalog_from_db(items, groups, item_tags, host_tags, hk_history, hk_trends)
        log.info("zabbix DB catalog: %d hosts, %d items", len(hostids), len(catalog))
        return catalog, retention

    @staticmethod
    def _housekeeping(conn) -> tuple[str | None, str | None]:
        """Global history/trends overrides: table `config` up to 6.x (`settings` rows in 7.x, where
        a missing `config` simply leaves item settings in force)."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with conn.begin_nested():
                row = conn.execute(text("SELECT hk_history_global, hk_history, hk_trends_global, hk_trends "
                                        "FROM config LIMIT 1")).first()
        except SQLAlchemyError:
            return None, None
        if row is None:
            return None, None
        return (row.hk_history if int(row.hk_history_global) == 1 else None,
                row.hk_trends if int(row.hk_trends_global) == 1 else None)

    # -- planning (same rules as the API mode) --------------------------------------------------
    def _now_s(self) -> int:
        return int((self._now or dt.datetime.now(dt.timezone.utc)).timestamp())

    def _plans(self, start_s: int, end_s: int) -> Iterator[tuple[int, str, Span, list[int]]]:
        catalog, retention = self.catalog()
        now_s = self._now_s()
        groups: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        for itemid, meta in catalog.items.items():
            groups[(meta.value_type, history_cutoff(retention[itemid].history_s, now_s))].append(itemid)
        for (value_type, cutoff), ids in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)):
            for resolution, span in plan_spans(start_s, end_s, cutoff, value_type in NUMERIC_TYPES, self.use_trends):
                for chunk in _chunks(sorted(ids), ITEMS_PER_QUERY):
                    yield value_type, resolution, span, chunk

    @staticmethod
    def _history_sql(value_type: int) -> str:
        # numeric(20) -> float8 in the database: Decimal objects per row would dominate the cost.
        value = "value::float8" if value_type == UINT else "value"
        return (f"SELECT itemid, clock, ns, {value} AS value FROM {HISTORY_TABLES[value_type]} "
                "WHERE itemid = ANY(:ids) AND clock >= :lo AND clock <= :hi")

    @staticmethod
    def _trend_sql(value_type: int) -> str:
        return ("SELECT itemid, clock, num, value_min::float8, value_avg::float8, value_max::float8 "
                f"FROM {TREND_TABLES[value_type]} WHERE itemid = ANY(:ids) AND clock >= :lo AND clock <= :hi")

    # -- PointSource --------------------------------------------------------------------------
    def extract(self, window, run_id: str, quarantine) -> Iterator:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        catalog, _ = self.catalog()
        start_s, end_s = window.start_s, math.ceil(window.end.timestamp())
        window_ns = (window.start_ns, window.end_ns)

        def on_bad(record: dict, reason: str) -> None:
            quarantine.add(record, reason, ref=f"zabbix item {record['itemid']} @ {record['clock']}.{record['ns']}",
                           stage="extract")

        def batches():
            with self._connect() as conn:
                conn = conn.execution_options(stream_results=True, yield_per=self.max_batch_rows)
                for value_type, resolution, span, ids in self._plans(start_s, end_s):
                    sql = self._history_sql(value_type) if resolution == RAW else self._trend_sql(value_type)
                    result = conn.execute(text(sql), {"ids": ids, "lo": span.lo, "hi": span.hi})
                    for rows in result.partitions():
                        cols = list(zip(*rows))
                        if resolution == RAW:
                            yield history_batch(catalog, run_id, value_type, *cols, window_ns, on_bad)
                        else:
                            yield trend_batch(catalog, run_id, *cols, window_ns)

        try:
            yield from rebatch(batches(), self.max_batch_rows)
        except SQLAlchemyError as exc:
            raise SourceError(f"Zabbix DB {self._where()}: reading {window} failed: "
                              f"{str(getattr(exc, 'orig', exc)).strip()[:300]}") from None

    def count(self, window, bucket: dt.timedelta) -> dict[dt.datetime, int]:
        from sqlalchemy import text

        starts = bucket_starts(window, bucket)
        counts = {s: 0 for s in starts}
        step = int(bucket.total_seconds())
        start_s, end_s = window.start_s, math.ceil(window.end.timestamp())
        with self._connect() as conn:
            for value_type, resolution, span, ids in self._plans(start_s, end_s):
                table = HISTORY_TABLES[value_type] if resolution == RAW else TREND_TABLES[value_type]
                rows = conn.execute(text(
                    f"SELECT clock - clock % :step AS b, count(*) AS n FROM {table} "
                    "WHERE itemid = ANY(:ids) AND clock >= :lo AND clock <= :hi GROUP BY 1"),
                    {"step": step, "ids": ids, "lo": span.lo, "hi": span.hi})
                for b, n in rows:
                    key = dt.datetime.fromtimestamp(int(b), tz=dt.timezone.utc)
                    if key in counts:
                        counts[key] += int(n)
        return counts
