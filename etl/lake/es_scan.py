"""Reading one daily points index out of Elasticsearch: a (sliced) point-in-time scan with
search_after on _shard_doc, pages turned into Arrow record batches of the point schema, and the
per-item numbers Elasticsearch itself reports (for verification).

Slices run in threads and hand pages over a small bounded queue, so memory stays at a few pages
while Elasticsearch works on the next page as this process converts the previous one."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterator

import pyarrow as pa

from etl.errors import StoreError
from etl.schema import point_schema

log = logging.getLogger(__name__)

_DONE = object()


def _search_page(es, pit_id: str, keep_alive: str, page_size: int, fields: list[str],
                 slice_id: int, slices: int, search_after):
    body: dict = {"pit": {"id": pit_id, "keep_alive": keep_alive}, "sort": [{"_shard_doc": "asc"}],
                  "size": page_size, "track_total_hits": False, "_source": {"includes": fields}}
    if slices > 1:
        body["slice"] = {"id": slice_id, "max": slices}
    if search_after is not None:
        body["search_after"] = search_after
    return es.search(body=body, filter_path=["pit_id", "hits.hits._id", "hits.hits._source", "hits.hits.sort"])


def iter_pages(es, index: str, *, fields: list[str] | None = None, slices: int = 2, page_size: int = 5000,
               keep_alive: str = "5m") -> Iterator[list[dict]]:
    """Every document of `index` as pages of hits ({_id, _source}), each document exactly once,
    from one consistent snapshot (point in time), in no particular order."""
    fields = fields or point_schema().names
    try:
        pit_id = es.open_point_in_time(index=index, keep_alive=keep_alive)["id"]
    except Exception as exc:
        raise StoreError(f"cannot open a point in time on index {index}: {exc}") from exc
    pages: queue.Queue = queue.Queue(maxsize=2 * max(slices, 1))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def run_slice(slice_id: int) -> None:
        search_after, current_pit = None, pit_id
        try:
            while not stop.is_set():
                resp = _search_page(es, current_pit, keep_alive, page_size, fields, slice_id, slices, search_after)
                current_pit = resp.get("pit_id", current_pit)
                hits = resp.get("hits", {}).get("hits", [])
                if not hits:
                    break
                if not put(hits):
                    return
                search_after = hits[-1]["sort"]
            put(_DONE)
        except Exception as exc:  # handed to the consumer, who raises it
            put(StoreError(f"scan of index {index} (slice {slice_id}/{slices}) failed: {exc}"))

    threads = [threading.Thread(target=run_slice, args=(i,), name=f"pit-slice-{i}", daemon=True)
               for i in range(max(slices, 1))]
    for t in threads:
        t.start()
    try:
        finished = 0
        while finished < len(threads):
            item = pages.get()
            if item is _DONE:
                finished += 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        try:
            es.close_point_in_time(body={"id": pit_id})
        except Exception:  # it expires by itself after keep_alive
            log.debug("closing point in time on %s failed", index, exc_info=True)


def hits_to_batch(hits: list[dict], schema: pa.Schema | None = None) -> tuple[pa.RecordBatch, list[tuple[dict, str]]]:
    """Arrow batch of the point schema from ES hits, plus the hits that cannot be points
    (hit, reason). Column-wise: one list per field, one Arrow conversion per column."""
    schema = schema or point_schema()
    sources = [h["_source"] for h in hits]
    try:
        arrays = [pa.array([s.get(f.name) for s in sources], type=f.type) for f in schema]
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return _rows_one_by_one(hits, schema)
    bad_rows = _rows_missing_required(arrays, schema)
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not bad_rows:
        return batch, []
    keep = [i for i in range(len(hits)) if i not in bad_rows]
    return batch.take(pa.array(keep, pa.int64())), [(hits[i], reason) for i, reason in sorted(bad_rows.items())]


def _rows_missing_required(arrays, schema) -> dict[int, str]:
    bad: dict[int, str] = {}
    for field, array in zip(schema, arrays):
        if not field.nullable and array.null_count:
            for i, valid in enumerate(array.is_valid().to_pylist()):
                if not valid:
                    bad.setdefault(i, f"missing required field {field.name}")
    return bad


def _rows_one_by_one(hits, schema) -> tuple[pa.RecordBatch, list[tuple[dict, str]]]:
    good, bad = [], []
    for hit in hits:
        src = hit["_source"]
        try:
            row = pa.RecordBatch.from_pylist([{f.name: src.get(f.name) for f in schema}], schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            bad.append((hit, f"field type mismatch: {exc}"))
            continue
        missing = _rows_missing_required(row.columns, schema)
        if missing:
            bad.append((hit, missing[0]))
        else:
            good.append(row)
    if good:
        return pa.Table.from_batches(good, schema=schema).combine_chunks().to_batches()[0], bad
    return pa.RecordBatch.from_pylist([], schema=schema), bad


def item_stats(es, index: str) -> dict[str, dict]:
    """Per itemid (as text): documents, min and max clock, as Elasticsearch counts them now."""
    stats: dict[str, dict] = {}
    after = None
    while True:
        composite: dict = {"size": 5000, "sources": [{"itemid": {"terms": {"field": "itemid"}}}]}
        if after:
            composite["after"] = after
        resp = es.search(index=index, size=0, track_total_hits=True, aggs={"items": {
            "composite": composite,
            "aggs": {"min_clock": {"min": {"field": "clock"}}, "max_clock": {"max": {"field": "clock"}}}}})
        agg = resp["aggregations"]["items"]
        for bucket in agg["buckets"]:
            stats[str(int(bucket["key"]["itemid"]))] = {
                "rows": int(bucket["doc_count"]),
                "min_clock": int(bucket["min_clock"]["value"]),
                "max_clock": int(bucket["max_clock"]["value"]),
            }
        after = agg.get("after_key")
        if not after or not agg["buckets"]:
            return stats


def count(es, index: str) -> int:
    return int(es.count(index=index)["count"])
