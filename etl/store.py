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

def lake_ids(storage, source: str, window: Window, hosts: list[str] | None = None) -> pa.Table:
    """(itemid, clock, ns, resolution) of the published lake points of `source` in `window`."""
    import pyarrow.parquet as pq

    from etl.lake import layout, reader

    filter = (ds.field("clock") >= window.start_s) & (ds.field("clock") <= window.end_s)
    if hosts:
        filter = filter & ds.field("host").isin(list(hosts))
    parts = []
    for day in window.days():
        for rel in reader.partition_files(storage, layout.points_partition(source, day)):
            local = storage.local_path(rel)
            try:
                if local is not None:
                    table = ds.dataset(str(local), format="parquet").to_table(columns=ID_COLUMNS, filter=filter)
                else:
                    with storage.open_read(rel) as fh:
                        table = pq.read_table(fh, columns=ID_COLUMNS, filters=filter)
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(f"cannot read point ids from lake file {rel} ({storage.url}): {exc}") from exc
            parts.append(_normalise(table))
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

def _bucket_of(table: pa.Table, step: int) -> np.ndarray:
    clock = table["clock"].to_numpy()
    return clock - clock % step


def _per_bucket(table: pa.Table, step: int) -> dict[dt.datetime, int]:
    if table.num_rows == 0:
        return {}
    buckets, counts = np.unique(_bucket_of(table, step), return_counts=True)
    return {dt.datetime.fromtimestamp(int(b), tz=dt.timezone.utc): int(n) for b, n in zip(buckets, counts)}


def distinct(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.group_by(ID_COLUMNS).aggregate([])


@dataclass
class StoreCounts:
    es: dict[dt.datetime, int] = field(default_factory=dict)
    lake: dict[dt.datetime, int] = field(default_factory=dict)
    union: dict[dt.datetime, int] = field(default_factory=dict)
    lake_table: pa.Table = field(default_factory=empty_ids)   # the lake ids read (reused for lookups)


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
    out.lake_table = lake_ids(storage, source, window, hosts)
    out.lake = _per_bucket(distinct(out.lake_table), step)
    out.union = {b: n for b, n in out.es.items()}
    for start, n in out.lake.items():
        if not out.es.get(start):
            out.union[start] = n
            continue
        if needed is not None and max(n, out.es[start]) >= needed.get(start, 0):
            out.union[start] = max(n, out.es[start])
            continue
        # Both tiers hold points of this bucket: count the union by id.
        span = Window(max(start, window.start), min(start + bucket, window.end))
        es_part = es_ids(client, settings.es_index_prefix, source, span, hosts)
        lake_part = _exact(out.lake_table, span)
        out.union[start] = distinct(pa.concat_tables([es_part, lake_part])).num_rows
    return out


def present(settings, source: str, points: list[tuple[int, int, int, str]], lake_table: pa.Table, *,
            client=None) -> set:
    """Which of `points` the store holds: looked up in the lake ids already read, then in
    Elasticsearch for the rest."""
    from etl.search.client import es_client

    if not points:
        return set()
    wanted = pa.table({"itemid": pa.array([p[0] for p in points], pa.int64()),
                       "clock": pa.array([p[1] for p in points], pa.int64()),
                       "ns": pa.array([p[2] for p in points], pa.int64()),
                       "resolution": pa.array([p[3] for p in points], pa.string())})
    in_lake: set = set()
    if lake_table.num_rows:
        hit = wanted.join(distinct(lake_table), keys=ID_COLUMNS, join_type="inner")
        in_lake = set(zip(*(hit[c].to_pylist() for c in ID_COLUMNS))) if hit.num_rows else set()
    rest = [p for p in points if p not in in_lake]
    if not rest:
        return in_lake
    return in_lake | es_present(client or es_client(settings), settings.es_index_prefix, source, rest)
