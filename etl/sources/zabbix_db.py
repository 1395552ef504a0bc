"""Zabbix straight from its database (read-only URL `settings.zabbix_db_url`): the bulk backfill
mode. Same points as the API mode (same catalog rules, same retention split into history and
trends), read from history*/trends* with server-side cursors so memory stays bounded, and turned
into Arrow column-wise (one tuple transpose per partition, no per-row dicts)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from etl.config import Settings
from etl.schema import LOG, NUMERIC_TYPES, UINT
from etl.sources.base import MAX_BATCH_ROWS, RAW, ItemCatalog, bucket_starts, rebatch
from etl.sources.sql import SqlSource
from etl.sources.zabbix_common import (HISTORY_TABLES, LOG_FIELDS, LOG_SOURCE_COLUMNS, TREND_TABLES, Span, chunks,
                                       history_batch, plan_spans, trend_batch)
from etl.sources.zabbix_meta import BuiltCatalogCache, CatalogCache, Retention, catalog_from_db, digest
from etl.sources.zabbix_source import ZabbixSource

log = logging.getLogger(__name__)

# itemids per query: keeps the ANY(array) parameter small while the index (itemid, clock) does the work.
ITEMS_PER_QUERY = 5000
# itemids per count(*): no rows come back, so larger lists cost only the index probes.
COUNT_ITEMS_PER_QUERY = 20_000


def id_array(ids) -> str:
    """SQL of an itemid array, `ARRAY[1,2,3]`, written into the statement: the same text psycopg2
    makes of a Python list (so the same plans: an index scan per id batch), without its per-id
    adaptation (~5 ms a 5,000-id list; a 100,000-item interval sends ~100 lists). A string literal
    cast to bigint[] is as cheap to build but lets PostgreSQL 15 plan hashed (parallel) sequential
    scans of the smaller history tables, measured at up to twice the server CPU."""
    return "ARRAY[" + ",".join(str(int(i)) for i in ids) + "]" if len(ids) else "ARRAY[]::bigint[]"


def psycopg2_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg2
    except ImportError:
        return ()
    return (psycopg2.Error,)

# Hosts (not templates, not host prototypes) and their items that have a point representation.
_ITEMS_WHERE = "h.status IN (0, 1) AND h.flags IN (0, 4) AND i.flags IN (0, 4) AND i.value_type IN (0, 1, 2, 3, 4)"


class ZabbixDbSource(SqlSource, ZabbixSource):
    mode = "db"
    db_label = "Zabbix DB"

    def __init__(self, settings: Settings, hosts: list[str] | None = None, itemids: list[int] | None = None,
                 max_batch_rows: int = MAX_BATCH_ROWS, use_trends: str = "auto", db_url: str | None = None,
                 now: dt.datetime | None = None, fast_copy: bool = True, **_ignored):
        super().__init__(settings, hosts, itemids, max_batch_rows, use_trends, now)
        self._url = db_url or settings.zabbix_db_url.reveal()
        self.fast_copy = fast_copy
        self.catalog_cached: bool | None = None   # whether the last catalog load came from the cache
        self.catalog_seconds: float | None = None

    # -- connection ---------------------------------------------------------------------------
    def _connect(self):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.engine.connect().execution_options(postgresql_readonly=True)
        except SQLAlchemyError as exc:
            raise self._fail("cannot connect", exc) from None

    # -- metadata -----------------------------------------------------------------------------
    def _load_catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        """Items, groups and tags with one shared filter (joins, not id lists: a full catalog has
        hundreds of thousands of items). Expanding IN keeps it portable to MySQL-backed Zabbix."""
        from sqlalchemy import bindparam, text

        where, binds, params = _ITEMS_WHERE, [], {}
        if self.hosts:
            where += " AND h.host IN :hosts"
            binds.append(bindparam("hosts", expanding=True))
            params["hosts"] = self.hosts
        if self.itemids:
            where += " AND i.itemid IN :itemids"
            binds.append(bindparam("itemids", expanding=True))
            params["itemids"] = self.itemids
        scope = f"FROM items i JOIN hosts h ON h.hostid = i.hostid WHERE {where}"

        def rows(sql: str) -> list[dict]:
            result = conn.execute(text(sql).bindparams(*binds), params)
            keys = list(result.keys())
            return [dict(zip(keys, row)) for row in result.all()]

        started = time.monotonic()
        cache = self._catalog_cache()
        with self._connect() as conn:
            host_scope = f"SELECT DISTINCT h.hostid {scope}"
            groups = rows("SELECT hg.hostid, g.name FROM hosts_groups hg JOIN hstgrp g ON g.groupid = hg.groupid "
                          f"WHERE hg.hostid IN ({host_scope}) ORDER BY hg.hostid, g.name")
            host_tags = rows(f"SELECT t.hostid, t.tag, t.value FROM host_tag t WHERE t.hostid IN ({host_scope}) "
                             "ORDER BY t.hostid, t.tag, t.value")
            hk_history, hk_trends = self._housekeeping(conn)
            fingerprint = None
            if cache is not None:
                # items are what costs (100,000 rows and their tags); hosts, groups and host tags are
                # read fresh each run and go into the fingerprint, as the API mode's host.get does
                hosts = rows(f"SELECT h.hostid, h.host, h.name FROM hosts h WHERE h.hostid IN ({host_scope}) "
                             "ORDER BY h.hostid")
                # count and highest id change with a new or deleted item, the weighted sum with a
                # changed value type (its history moves to another table)
                count, top, types = conn.execute(text(
                    f"SELECT count(*), coalesce(max(i.itemid), 0), coalesce(sum(i.itemid * (i.value_type + 1)), 0) "
                    f"{scope}").bindparams(*binds), params).one()
                fingerprint = [int(count), int(top), str(types),
                               digest(hosts, groups, host_tags, hk_history, hk_trends)]
                cached = cache.load(fingerprint)
                if cached is not None:
                    self.catalog_cached, self.catalog_seconds = True, time.monotonic() - started
                    log.info("zabbix DB catalog: %d items (cached) in %.1fs", len(cached[0]), self.catalog_seconds)
                    return cached
            items = rows("SELECT i.itemid, i.hostid, h.host, h.name AS host_name, i.key_, i.name, i.units, "
                         f"i.value_type, i.history, i.trends {scope}")
            item_tags = rows(f"SELECT t.itemid, t.tag, t.value FROM item_tag t WHERE t.itemid IN (SELECT i.itemid {scope})")
        catalog, retention = catalog_from_db(items, groups, item_tags, host_tags, hk_history, hk_trends)
        if cache is not None:
            cache.save(fingerprint, catalog, retention)
        self.catalog_cached, self.catalog_seconds = False, time.monotonic() - started
        log.info("zabbix DB catalog: %d hosts, %d items (read) in %.1fs", len({r["hostid"] for r in items}),
                 len(catalog), self.catalog_seconds)
        return catalog, retention

    def _catalog_cache(self) -> BuiltCatalogCache | None:
        """None when disabled (MONETL_ZABBIX_CATALOG_TTL=0). Keyed by the database (never its
        password) and the scope."""
        ttl = self.settings.zabbix_catalog_ttl
        if ttl <= 0:
            return None
        url = self.engine.url
        key = CatalogCache.key(url.drivername, url.host, url.port, url.database, url.username,
                               sorted(self.hosts or []), sorted(self.itemids or []))
        return BuiltCatalogCache(self.settings.home / "state" / f"zabbix-db-catalog-{key}.arrow", ttl)

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
    def _plans(self, start_s: int, end_s: int) -> Iterator[tuple[int, str, Span, list[int]]]:
        raw_spans: dict[Span, list[tuple[int, list[int]]]] = {}
        for (value_type, cutoff), ids in self._groups().items():
            for resolution, span in plan_spans(start_s, end_s, cutoff, value_type in NUMERIC_TYPES, self.use_trends):
                for chunk in chunks(sorted(ids), ITEMS_PER_QUERY):
                    yield value_type, resolution, span, chunk
                if resolution == RAW:
                    raw_spans.setdefault(span, []).append((value_type, ids))
        # the other history tables for the same items and spans (rows written under an earlier
        # value type): index probes on (itemid, clock), nearly always empty
        yield from self._earlier_plans(raw_spans, ITEMS_PER_QUERY)

    @staticmethod
    def _select(value_type: int, resolution: str) -> tuple[str, str, list[tuple[str, pa.DataType]]]:
        """(columns, table, Arrow types) of one query. Unsigned numeric(20) values come as their
        decimal text (exact; converted to uint64 by Arrow, never through float or Decimal objects);
        trend min/max are cast to float8 in the database. Log rows bring their four extra columns."""
        if resolution == RAW:
            value_arrow = pa.float64() if value_type == 0 else pa.string()
            columns = "itemid, clock, ns, value"
            types = [("itemid", pa.int64()), ("clock", pa.int64()), ("ns", pa.int64()), ("value", value_arrow)]
            if value_type == LOG:
                columns += ", " + ", ".join(f'"{LOG_SOURCE_COLUMNS[f]}"' for f in LOG_FIELDS)
                types += [(f, pa.string() if f == "log_source" else pa.int64()) for f in LOG_FIELDS]
            return columns, HISTORY_TABLES[value_type], types
        avg = "value_avg" if value_type == UINT else "value_avg::float8"
        return (f"itemid, clock, num, value_min::float8, {avg}, value_max::float8",
                TREND_TABLES[value_type], [("itemid", pa.int64()), ("clock", pa.int64()), ("num", pa.int64()),
                                           ("value_min", pa.float64()),
                                           ("value_avg", pa.string() if value_type == UINT else pa.float64()),
                                           ("value_max", pa.float64())])

    def _copy_parts(self, conn, value_type: int, resolution: str, span: Span, ids: list[int]) -> Iterator[list]:
        """PostgreSQL fast path: COPY (SELECT ...) TO STDOUT as CSV into a pipe, parsed incrementally
        by Arrow's streaming CSV reader: no Python object per row, and memory bounded by the pipe
        and one parse block whatever the window size."""
        columns, table, types = self._select(value_type, resolution)
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            query = cur.mogrify(f"SELECT {columns} FROM {table} WHERE itemid = ANY({id_array(ids)}) "
                                "AND clock >= %(lo)s AND clock <= %(hi)s", {"lo": span.lo, "hi": span.hi}).decode()
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb", buffering=1 << 20)
        writer = os.fdopen(write_fd, "wb", buffering=1 << 20)
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with raw.cursor() as cur:
                    cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", writer)
            except BaseException as exc:  # re-raised in the reading thread below
                failure.append(exc)
            finally:
                with contextlib.suppress(OSError):
                    writer.close()

        producer = threading.Thread(target=produce, name="zabbix-db-copy", daemon=True)
        producer.start()
        finished = False
        try:
            if reader.peek(1):
                stream = pacsv.open_csv(
                    reader, read_options=pacsv.ReadOptions(column_names=[n for n, _ in types], block_size=4 << 20),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(column_types=dict(types), strings_can_be_null=False,
                                                         quoted_strings_can_be_null=False))
                for batch in stream:
                    yield [batch.column(i) for i in range(batch.num_columns)]
            finished = True
        finally:
            reader.close()  # a consumer that stopped early breaks the pipe: the COPY then fails
            producer.join()
            if not finished:
                conn.invalidate()  # the connection is mid-COPY: never hand it out again
        if failure:
            raise failure[0]

    def _stream_parts(self, conn, value_type: int, resolution: str, span: Span, ids: list[int]) -> Iterator[list]:
        """Portable path (any SQLAlchemy dialect, e.g. a MySQL-backed Zabbix): a server-side cursor,
        one tuple transpose per partition."""
        from sqlalchemy import bindparam, text

        columns, table, _ = self._select(value_type, resolution)
        if conn.dialect.name != "postgresql":
            columns = columns.replace("::float8", "")
        query = text(f"SELECT {columns} FROM {table} WHERE itemid IN :ids AND clock >= :lo AND clock <= :hi"
                     ).bindparams(bindparam("ids", expanding=True))
        result = conn.execution_options(stream_results=True).execute(query, {"ids": ids, "lo": span.lo, "hi": span.hi})
        for rows in result.partitions(self.max_batch_rows):
            yield [list(c) for c in zip(*rows)]

    # -- PointSource --------------------------------------------------------------------------
    def extract(self, window, run_id: str, quarantine) -> Iterator:
        from sqlalchemy.exc import SQLAlchemyError

        catalog, _ = self.catalog()
        start_s, end_s = self._seconds(window)
        window_ns = (window.start_ns, window.end_ns)
        on_bad = self._on_bad(quarantine)

        def batches():
            with self._connect() as conn:
                fast = self.fast_copy and conn.dialect.driver == "psycopg2"
                for value_type, resolution, span, ids in self._plans(start_s, end_s):
                    parts = (self._copy_parts if fast else self._stream_parts)(conn, value_type, resolution, span, ids)
                    # closing(): a consumer that stops early ends the COPY before the connection closes.
                    with contextlib.closing(parts):
                        for cols in parts:
                            if resolution == RAW:
                                log = dict(zip(LOG_FIELDS, cols[4:])) if value_type == LOG else None
                                yield history_batch(catalog, run_id, value_type, *cols[:4], window_ns, on_bad, log)
                            else:
                                yield trend_batch(catalog, run_id, *cols, window_ns, value_type)

        try:
            yield from rebatch(batches(), self.max_batch_rows)
        except (SQLAlchemyError, *psycopg2_errors()) as exc:
            raise self._fail(f"reading {window} failed", exc) from None

    def _count_rows(self, value_type: int, span: Span, itemids: list[int]) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        def query(ids) -> str:  # driver SQL: a statement per id list must not fill SQLAlchemy's compiled cache
            return (f"SELECT count(*) FROM {HISTORY_TABLES[value_type]} "
                    f"WHERE itemid = ANY({id_array(ids)}) AND clock >= %(lo)s AND clock <= %(hi)s")

        try:
            with self._connect() as conn:
                return sum(int(conn.exec_driver_sql(query(chunk), {"lo": span.lo, "hi": span.hi}).scalar())
                           for chunk in chunks(sorted(itemids), COUNT_ITEMS_PER_QUERY))
        except (SQLAlchemyError, *psycopg2_errors()) as exc:
            raise self._fail(f"counting {HISTORY_TABLES[value_type]} [{span.lo}, {span.hi}] failed", exc) from None

    def count(self, window, bucket: dt.timedelta) -> dict[dt.datetime, int]:
        starts = bucket_starts(window, bucket)
        counts = {s: 0 for s in starts}
        step = int(bucket.total_seconds())
        start_s, end_s = self._seconds(window)
        with self._connect() as conn:
            for value_type, resolution, span, ids in self._plans(start_s, end_s):
                table = HISTORY_TABLES[value_type] if resolution == RAW else TREND_TABLES[value_type]
                rows = conn.exec_driver_sql(
                    f"SELECT clock - clock %% %(step)s AS b, count(*) AS n FROM {table} "
                    f"WHERE itemid = ANY({id_array(ids)}) AND clock >= %(lo)s AND clock <= %(hi)s GROUP BY 1",
                    {"step": step, "lo": span.lo, "hi": span.hi})
                for b, n in rows:
                    key = dt.datetime.fromtimestamp(int(b), tz=dt.timezone.utc)
                    if key in counts:
                        counts[key] += int(n)
        return counts
