"""KCMM from its database through SQLAlchemy (URL `settings.kcmm_db_url`), tables and columns named
by schemas/kcmm/mapping.json. Sample times are the desks' local wall-clock time: the window is
widened by a few hours in local time for the SQL range, then cut exactly in UTC after conversion.

Only portable SQL (quoted identifiers, expanding IN), because a real KCMM may sit on SQL Server."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from etl.config import Settings
from etl.schema import NUMERIC_TYPES
from etl.sources.base import MAX_BATCH_ROWS, RAW, ItemCatalog, ItemMeta, bucket_starts, build_points, rebatch
from etl.sources.kcmm_mapping import KcmmMapping, local_to_utc
from etl.sources.sql import SqlSource

log = logging.getLogger(__name__)

# Larger than any UTC offset change (DST), so the local-time SQL range never misses a sample.
_MARGIN = dt.timedelta(hours=3)


class KcmmDbSource(SqlSource):
    name = "kcmm"
    mode = "db"
    db_label = "KCMM DB"

    def __init__(self, settings: Settings, hosts: list[str] | None = None, max_batch_rows: int = MAX_BATCH_ROWS,
                 mapping: KcmmMapping | str | None = None, timezone: str | None = None, db_url: str | None = None,
                 **_ignored):
        self.settings = settings
        self.mapping = mapping if isinstance(mapping, KcmmMapping) else KcmmMapping.load(mapping, timezone)
        self.hosts = list(hosts) if hosts else None
        self.max_batch_rows = max_batch_rows
        self._url = db_url or settings.kcmm_db_url.reveal()
        self._items: dict[tuple[int, int], ItemMeta] | None = None

    # -- connection ---------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    # -- metadata -----------------------------------------------------------------------------
    def items(self) -> dict[tuple[int, int], ItemMeta]:
        """(machine id, counter id) -> item, for every machine x counter (names -> stable itemids)."""
        if self._items is None:
            from sqlalchemy import text
            from sqlalchemy.exc import SQLAlchemyError

            m, c = self.mapping.db["machines"], self.mapping.db["counters"]
            m_cols = [m["id"], m["name"], m.get("display_name"), *m.get("attributes", {}).values()]
            c_cols = [c["id"], c["name"], c.get("unit"), *c.get("attributes", {}).values()]
            try:
                with self.engine.connect() as conn:
                    machines = conn.execute(text(
                        f"SELECT {', '.join(self._q(x) if x else 'NULL' for x in m_cols)} FROM {self._q(m['table'])}"
                    )).all()
                    counters = conn.execute(text(
                        f"SELECT {', '.join(self._q(x) if x else 'NULL' for x in c_cols)} FROM {self._q(c['table'])}"
                    )).all()
            except SQLAlchemyError as exc:
                raise self._fail("reading machines/counters", exc) from None
            m_attrs, c_attrs = list(m.get("attributes", {})), list(c.get("attributes", {}))
            items = {}
            for mrow in machines:
                if self.hosts and mrow[1] not in self.hosts:
                    continue
                for crow in counters:
                    attrs = dict(zip(m_attrs, mrow[3:])) | dict(zip(c_attrs, crow[3:]))
                    items[(int(mrow[0]), int(crow[0]))] = self.mapping.item(mrow[1], crow[1], mrow[2], crow[2], attrs)
            self._items = items
        return self._items

    # -- reading ------------------------------------------------------------------------------
    def _local_range(self, window) -> tuple[dt.datetime, dt.datetime]:
        tz = ZoneInfo(self.mapping.timezone)
        lo = (window.start.astimezone(tz) - _MARGIN).replace(tzinfo=None)
        hi = (window.end.astimezone(tz) + _MARGIN).replace(tzinfo=None)
        return lo, hi

    def _sample_query(self, columns: list[str]):
        from sqlalchemy import bindparam, text

        s = self.mapping.db["samples"]
        sql = (f"SELECT {', '.join(columns)} FROM {self._q(s['table'])} "
               f"WHERE {self._q(s['time'])} >= :lo AND {self._q(s['time'])} < :hi")
        params = {}
        if self.hosts:
            machine_ids = sorted({mid for mid, _ in self.items()})
            sql += f" AND {self._q(s['machine_id'])} IN :machine_ids"
            params["machine_ids"] = machine_ids or [-1]
            return text(sql).bindparams(bindparam("machine_ids", expanding=True)), params
        return text(sql), params

    def _stream(self, window, columns: list[str]) -> Iterator[list]:
        from sqlalchemy.exc import SQLAlchemyError

        lo, hi = self._local_range(window)
        query, params = self._sample_query(columns)
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(stream_results=True)
                result = conn.execute(query, {"lo": lo, "hi": hi, **params})
                yield from result.partitions(self.max_batch_rows)
        except SQLAlchemyError as exc:
            raise self._fail(f"reading samples for {window}", exc) from None

    def extract(self, window, run_id: str, quarantine) -> Iterator[pa.RecordBatch]:
        s = self.mapping.db["samples"]
        value_text_col = self._q(s["value_text"]) if s.get("value_text") else "NULL"
        status_col = self._q(s["status"]) if s.get("status") else "0"
        columns = [self._q(s["machine_id"]), self._q(s["counter_id"]), self._q(s["time"]), self._q(s["value"]),
                   value_text_col, status_col]
        items = self.items()
        catalog = ItemCatalog("kcmm", items.values())
        item_of = {pair: meta.itemid for pair, meta in items.items()}
        text_items = {meta.itemid for meta in items.values() if meta.value_type not in NUMERIC_TYPES}

        text_ids = np.fromiter(text_items, dtype=np.int64, count=len(text_items))

        def quarantine_rows(rows_idx, reason_of, machine_id, counter_id, local, value, value_text, status):
            for i in rows_idx:
                meta = items.get((machine_id[i], counter_id[i]))  # None for an unknown machine/counter
                quarantine.add({"source": "kcmm", "host": meta.host if meta else None,
                                "key": meta.key if meta else None,
                                "machine_id": machine_id[i], "counter_id": counter_id[i], "sample_time": local[i],
                                "value": value[i], "value_text": value_text[i], "status": status[i]},
                               reason_of(i), ref=f"kcmm sample machine {machine_id[i]} counter {counter_id[i]} "
                                                 f"@ {local[i]} ({self.mapping.timezone})", stage="extract")

        def batches():
            for rows in self._stream(window, columns):
                machine_id, counter_id, local, value, value_text, status = zip(*rows)
                clock, ns = local_to_utc(pa.array(local, type=pa.timestamp("us")), self.mapping.timezone)
                t_ns = clock * 1_000_000_000 + ns
                inside = (t_ns >= window.start_ns) & (t_ns < window.end_ns)
                itemids = np.fromiter((item_of.get(pair, -1) for pair in zip(machine_id, counter_id)),
                                      dtype=np.int64, count=len(rows))
                values = pa.array(value, pa.float64())
                texts = pa.array(value_text, pa.string())
                is_text = np.isin(itemids, text_ids)
                value_null = values.is_null().to_numpy(zero_copy_only=False)
                text_null = texts.is_null().to_numpy(zero_copy_only=False)
                fallback = np.flatnonzero(inside & is_text & text_null & ~value_null)
                if len(fallback):  # a text counter whose collector wrote the number column
                    patched = texts.to_pylist()
                    for i in fallback.tolist():
                        patched[i] = repr(value[i])
                    texts = pa.array(patched, pa.string())
                    text_null[fallback] = False
                unknown = itemids < 0
                missing = ~unknown & np.where(is_text, text_null, value_null)
                if not self.hosts:  # with a host filter, other machines' rows are simply not ours
                    quarantine_rows(np.flatnonzero(inside & unknown).tolist(), lambda i: "unknown machine or counter id",
                                    machine_id, counter_id, local, value, value_text, status)
                quarantine_rows(np.flatnonzero(inside & missing).tolist(),
                                lambda i: f"no value (collector status {status[i]})",
                                machine_id, counter_id, local, value, value_text, status)
                idx = np.flatnonzero(inside & ~unknown & ~missing)
                if len(idx) == 0:
                    continue
                take = pa.array(idx)
                yield build_points(catalog, itemid=itemids[idx], clock=clock[idx], ns=ns[idx], run_id=run_id,
                                   value=values.take(take), value_text=texts.take(take), resolution=RAW)

        yield from rebatch(batches(), self.max_batch_rows)

    def count(self, window, bucket: dt.timedelta) -> dict[dt.datetime, int]:
        s = self.mapping.db["samples"]
        starts = bucket_starts(window, bucket)
        counts = {b: 0 for b in starts}
        step = int(bucket.total_seconds())
        known = self.items()
        value_cols = [self._q(s["value"])] + ([self._q(s["value_text"])] if s.get("value_text") else [])
        has_value = "(" + " OR ".join(f"{c} IS NOT NULL" for c in value_cols) + ")"
        for rows in self._stream(window, [self._q(s["machine_id"]), self._q(s["counter_id"]), self._q(s["time"]),
                                          has_value]):
            machine_id, counter_id, local, present = zip(*rows)
            clock, ns = local_to_utc(pa.array(local, type=pa.timestamp("us")), self.mapping.timezone)
            t_ns = clock * 1_000_000_000 + ns
            mask = (t_ns >= window.start_ns) & (t_ns < window.end_ns)
            mask &= np.array([(m, c) in known for m, c in zip(machine_id, counter_id)], dtype=bool)
            mask &= np.array(present, dtype=bool)  # samples without a value are quarantined, not points
            buckets, n = np.unique(clock[mask] - clock[mask] % step, return_counts=True)
            for b, k in zip(buckets.tolist(), n.tolist()):
                key = dt.datetime.fromtimestamp(b, tz=dt.timezone.utc)
                counts[key] = counts.get(key, 0) + k
        return counts
