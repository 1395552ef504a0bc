"""The points store as one thing: Elasticsearch (the day index) ∪ the published lake partition,
counted per bucket by point id, for `monetl gaps` and `backfill`.

A point in both tiers (a day compacted with --keep, or a compacted day an hour of which was
re-ingested) counts once. Cheap where it can be: the lake side reads only itemid/clock/ns/
resolution from Parquet (column projection, filter pushdown; on HDFS through ranged WebHDFS reads,
not whole files), Elasticsearch is counted by an aggregation, and point ids are fetched from
Elasticsearch only for the buckets that both tiers hold points of."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from etl.errors import StoreError
from etl.window import Window

ID_COLUMNS = ["itemid", "clock", "ns", "resolution"]
_ID_SCHEMA = pa.schema([("itemid", pa.int64()), ("clock", pa.int64()), ("ns", pa.int64()),
                        ("resolution", pa.string())])
ID_PAGE = 10_000


def empty_ids() -> pa.Table:
    return _ID_SCHEMA.empty_table()


def _normalise(table: pa.Table) -> pa.Table:
    return pa.table({f.name: table[f.name].cast(f.type) for f in _ID_SCHEMA}, schema=_ID_SCHEMA)


def _exact(table: pa.Table, window: Window) -> pa.Table:
    if table.num_rows == 0:
        return table
    t = pc.add(pc.multiply(table["clock"], 1_000_000_000), table["ns"])
    return table.filter(pc.and_(pc.greater_equal(t, window.start_ns), pc.less(t, window.end_ns)))


# --- lake ------------------------------------------------------------------------------------------

def _lake_filter(window: Window, hosts, itemids):
    filter = (ds.field("clock") >= window.start_s) & (ds.field("clock") <= window.end_s)
    if hosts:
        filter = filter & ds.field("host").isin(list(hosts))
    if itemids:
        filter = filter & ds.field("itemid").isin([int(i) for i in itemids])
    return filter


def _lake_batches(storage, source: str, window: Window, columns: list[str], hosts=None, itemids=None):
    """Record batches of `columns` from the published lake files of the days the window touches,
    streamed (bounded memory on a day of any size), filtered to whole seconds of the window: local
    files with pushdown, HDFS files through ranged reads of only the columns needed."""
    import pyarrow.parquet as pq

    from etl.lake import layout, reader

    filter = _lake_filter(window, hosts, itemids)
    needed = list(dict.fromkeys(columns + ["clock"] + (["host"] if hosts else []) + (["itemid"] if itemids else [])))
    for day in window.days():
        for rel in reader.partition_files(storage, layout.points_partition(source, day)):
            local = storage.local_path(rel)
            try:
                if local is not None:
                    yield from ds.dataset(str(local), format="parquet").to_batches(columns=columns, filter=filter)
                    continue
                with storage.open_read(rel) as fh:
                    for batch in pq.ParquetFile(fh).iter_batches(batch_size=262_144, columns=needed):
                        table = pa.Table.from_batches([batch]).filter(filter).select(columns)
                        yield from table.to_batches()
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(f"cannot read point ids from lake file {rel} ({storage.url}): {exc}") from exc


def lake_counts(storage, source: str, window: Window, bucket: dt.timedelta,
                hosts: list[str] | None = None) -> dict[dt.datetime, int]:
    """Published lake points per bucket start (a partition holds one row per point id, so rows are
    points), from the clock and ns columns only."""
    step = int(bucket.total_seconds())
    totals: dict[int, int] = {}
    for batch in _lake_batches(storage, source, window, ["clock", "ns"], hosts):
        clock = batch.column(0).to_numpy().astype(np.int64)
        t = clock * 1_000_000_000 + batch.column(1).to_numpy().astype(np.int64)
        clock = clock[(t >= window.start_ns) & (t < window.end_ns)]
        if len(clock):
            buckets, n = np.unique(clock - clock % step, return_counts=True)
            for b, k in zip(buckets.tolist(), n.tolist()):
                totals[b] = totals.get(b, 0) + k
    return {dt.datetime.fromtimestamp(b, tz=dt.timezone.utc): n for b, n in sorted(totals.items())}


def lake_ids(storage, source: str, window: Window, hosts: list[str] | None = None,
             itemids=None) -> pa.Table:
    """(itemid, clock, ns, resolution) of the published lake points of `source` in `window` (meant
    for narrow windows or a few items: it is materialised)."""
    parts = [_normalise(pa.Table.from_batches([b])) for b in
             _lake_batches(storage, source, window, ID_COLUMNS, hosts, itemids) if b.num_rows]
    if not parts:
        return empty_ids()
    return _exact(pa.concat_tables(parts), window)


# --- Elasticsearch ---------------------------------------------------------------------------------

def _query(source: str, window: Window, hosts: list[str] | None) -> dict:
    filters = [{"term": {"source": source}},
               {"range": {"@timestamp": {"gte": window.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                                         "lt": window.end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}}]
    if hosts:
        filters.append({"terms": {"host": list(hosts)}})
    return {"bool": {"filter": filters}}


def parse_point_id(doc_id: str) -> tuple[int, int, int, str]:
    """source:itemid:clock:ns[:resolution] (etl.schema.point_id) -> (itemid, clock, ns, resolution)."""
    parts = doc_id.split(":")
    resolution = "raw"
    if not parts[-1].lstrip("-").isdigit():
        resolution = parts.pop()
    return int(parts[-3]), int(parts[-2]), int(parts[-1]), resolution


def es_ids(client, prefix: str, source: str, window: Window, hosts: list[str] | None = None) -> pa.Table:
    """Point ids in Elasticsearch for `window` (no _source fetched: the ids are the _id)."""
    from etl.schema import points_index_pattern

    ids: list[tuple[int, int, int, str]] = []
    after = None
    while True:
        # @timestamp has ns precision (date_nanos), so with itemid and resolution the sort is unique.
        body = {"size": ID_PAGE, "query": _query(source, window, hosts), "_source": False,
                "sort": [{"@timestamp": "asc"}, {"itemid": "asc"}, {"resolution": "asc"}]}
        if after:
            body["search_after"] = after
        try:
            response = client.search(index=points_index_pattern(prefix, source), ignore_unavailable=True,
                                     allow_no_indices=True, track_total_hits=False, **body)
        except Exception as exc:
            from etl.search.client import redact_url

            raise StoreError(f"cannot read {source} point ids in {window}: {redact_url(str(exc))[:500]}") from None
        hits = response["hits"]["hits"]
        ids.extend(parse_point_id(h["_id"]) for h in hits)
        if len(hits) < ID_PAGE:
            break
        after = hits[-1]["sort"]
    if not ids:
        return empty_ids()
    itemid, clock, ns, resolution = zip(*ids)
    return pa.table({"itemid": pa.array(itemid, pa.int64()), "clock": pa.array(clock, pa.int64()),
                     "ns": pa.array(ns, pa.int64()), "resolution": pa.array(resolution, pa.string())})


def es_present(client, prefix: str, source: str, points: list[tuple[int, int, int, str]]) -> set:
    """Which of these points Elasticsearch holds (an ids query per thousand)."""
    from etl.schema import point_id, points_index_pattern

    found = set()
    for offset in range(0, len(points), 1000):
        chunk = points[offset:offset + 1000]
        ids = [point_id(source, *p) for p in chunk]
        try:
            response = client.search(index=points_index_pattern(prefix, source), size=len(ids), _source=False,
                                     query={"ids": {"values": ids}}, ignore_unavailable=True, allow_no_indices=True)
        except Exception as exc:
            from etl.search.client import redact_url

            raise StoreError(f"cannot look up {len(ids)} {source} points: {redact_url(str(exc))[:500]}") from None
        found.update(parse_point_id(h["_id"]) for h in response["hits"]["hits"])
    return found


# --- the union ---------------------------------------------------------------------------------------

def distinct(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.group_by(ID_COLUMNS).aggregate([])


@dataclass
class StoreCounts:
    es: dict[dt.datetime, int] = field(default_factory=dict)
    lake: dict[dt.datetime, int] = field(default_factory=dict)
    union: dict[dt.datetime, int] = field(default_factory=dict)


def counts(settings, source: str, window: Window, bucket: dt.timedelta, *, client=None, storage=None,
           hosts: list[str] | None = None, needed: dict[dt.datetime, int] | None = None) -> StoreCounts:
    """Points per bucket start in Elasticsearch, in the lake and in their union (by point id).

    needed (the source's counts): where one tier alone already holds that many points, the union
    is taken as the larger tier without fetching ids (it cannot be short then); that keeps a day
    held in both tiers (compacted with --keep) from costing an id scan of the whole index."""
    from etl.lake.storage import open_storage
    from etl.search.client import es_client
    from etl.search.scan import bucket_counts

    step = int(bucket.total_seconds())
    if step <= 0:
        raise StoreError("bucket must be at least one second")
    client = client or es_client(settings)
    storage = storage or open_storage(settings)
    out = StoreCounts()
    out.es = bucket_counts(client, settings.es_index_prefix, source, window, bucket, hosts=hosts)
    out.lake = lake_counts(storage, source, window, bucket, hosts)
    out.union = {b: n for b, n in out.es.items()}
    for start, n in out.lake.items():
        if not out.es.get(start):
            out.union[start] = n
            continue
        if needed is not None and max(n, out.es[start]) >= needed.get(start, 0):
            out.union[start] = max(n, out.es[start])
            continue
        # Both tiers hold points of this bucket and neither alone is complete: the union by id.
        span = Window(max(start, window.start), min(start + bucket, window.end))
        es_part = es_ids(client, settings.es_index_prefix, source, span, hosts)
        lake_part = lake_ids(storage, source, span, hosts)
        out.union[start] = distinct(pa.concat_tables([es_part, lake_part])).num_rows
    return out


def present(settings, source: str, points: list[tuple[int, int, int, str]], *, client=None,
            storage=None) -> set:
    """Which of `points` (a few: quarantined ones) the store holds: looked up in the lake (their
    items and time span only), then in Elasticsearch for the rest."""
    from etl.lake.storage import open_storage
    from etl.search.client import es_client

    if not points:
        return set()
    storage = storage or open_storage(settings)
    wanted = pa.table({"itemid": pa.array([p[0] for p in points], pa.int64()),
                       "clock": pa.array([p[1] for p in points], pa.int64()),
                       "ns": pa.array([p[2] for p in points], pa.int64()),
                       "resolution": pa.array([p[3] for p in points], pa.string())})
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    span = Window(dt.datetime.fromtimestamp(lo, tz=dt.timezone.utc),
                  dt.datetime.fromtimestamp(hi + 1, tz=dt.timezone.utc))
    lake = lake_ids(storage, source, span, itemids=sorted({p[0] for p in points}))
    in_lake: set = set()
    if lake.num_rows:
        hit = wanted.join(distinct(lake), keys=ID_COLUMNS, join_type="inner")
        in_lake = set(zip(*(hit[c].to_pylist() for c in ID_COLUMNS))) if hit.num_rows else set()
    rest = [p for p in points if p not in in_lake]
    if not rest:
        return in_lake
    return in_lake | es_present(client or es_client(settings), settings.es_index_prefix, source, rest)
