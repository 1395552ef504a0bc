"""Reading one daily points index out of Elasticsearch: a (sliced) point-in-time scan with
search_after on _shard_doc, pages turned into Arrow record batches of the point schema, and the
per-item numbers Elasticsearch itself reports (for verification).

Slices run in threads and hand pages over a small bounded queue, so memory stays at a few pages
while Elasticsearch works on the next page as this process converts the previous one."""

from __future__ import annotations

import functools
import io
import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.json as pj

from etl.errors import StoreError
from etl.schema import point_schema
from etl.search.composite import composite_buckets

log = logging.getLogger(__name__)

_DONE = object()
_FILTER_PATH = ["pit_id", "hits.hits._id", "hits.hits._source", "hits.hits.sort"]


def raw_client(settings):
    """A client of its own whose JSON responses stay bytes: pages are parsed by Arrow's JSON reader
    (C++, outside the GIL, in the slice threads) instead of into Python dicts."""
    from elastic_transport import JsonSerializer, SerializerCollection

    from etl.search.client import es_client

    class _KeepBytes(JsonSerializer):
        def loads(self, data: bytes):
            return data

    es = es_client(settings, request_timeout=300)
    keep = _KeepBytes()
    current = es.transport.serializers.serializers
    es.transport.serializers = SerializerCollection(
        {**current, **{mimetype: keep for mimetype in current if mimetype.endswith("json") and not mimetype.endswith("ndjson")}})
    return es


@dataclass
class Page:
    """One parsed page: what the consumer gets, how many hits it had, where the next page starts."""
    payload: object
    hits: int
    last_sort: list | None


def _page_body(pit_id: str, keep_alive: str, page_size: int, fields: list[str] | None, slice_id: int,
               slices: int, search_after) -> dict:
    body: dict = {"pit": {"id": pit_id, "keep_alive": keep_alive}, "sort": [{"_shard_doc": "asc"}],
                  "size": page_size, "track_total_hits": False}
    if fields:
        body["_source"] = {"includes": fields}
    if slices > 1:
        body["slice"] = {"id": slice_id, "max": slices}
    if search_after is not None:
        body["search_after"] = search_after
    return body


def parse_hits_json(body: bytes) -> Page:
    """Plain decoding into Python objects (the payload is the list of hits)."""
    hits = (json.loads(body) or {}).get("hits", {}).get("hits", [])
    return Page(hits, len(hits), hits[-1]["sort"] if hits else None)


def iter_pages(raw_es, index: str, parse: Callable[[bytes], Page] = parse_hits_json, *,
               fields: list[str] | None = None, slices: int = 2, page_size: int = 5000,
               keep_alive: str = "5m") -> Iterator[object]:
    """Every document of `index` exactly once, from one consistent snapshot (point in time), as the
    payloads of `parse` applied to each raw page (in the slice threads), in no particular order.
    `raw_es` is a client from `raw_client`. Without `fields` the stored _source is sent as is:
    source filtering makes Elasticsearch parse every document and halves the scan rate (measured);
    fields outside the point schema (@timestamp) are dropped by the parser instead."""
    try:
        pit_id = json.loads(raw_es.open_point_in_time(index=index, keep_alive=keep_alive).body)["id"]
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
        search_after = None
        try:
            while not stop.is_set():
                resp = raw_es.search(body=_page_body(pit_id, keep_alive, page_size, fields, slice_id, slices,
                                                     search_after), filter_path=_FILTER_PATH)
                page = parse(resp.body)
                if page.hits == 0:
                    break
                if not put(page.payload):
                    return
                search_after = page.last_sort
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
            raw_es.close_point_in_time(body={"id": pit_id})
        except Exception:  # it expires by itself after keep_alive
            log.debug("closing point in time on %s failed", index, exc_info=True)


@functools.cache
def _response_schema(schema: pa.Schema) -> pa.Schema:
    source = pa.struct([pa.field(f.name, f.type, nullable=True) for f in schema])
    hit = pa.struct([("_id", pa.string()), ("_source", source), ("sort", pa.list_(pa.int64()))])
    return pa.schema([("pit_id", pa.string()), ("hits", pa.struct([("hits", pa.list_(hit))]))])


def parse_points_page(body: bytes, schema: pa.Schema | None = None) -> Page:
    """Arrow batch of the point schema straight from the response bytes; payload is
    (batch, rejected [(hit, reason)]). Pages Arrow cannot type (a string where a number belongs)
    take the slow path, which names each bad document."""
    schema = schema or point_schema()
    try:
        table = pj.read_json(io.BytesIO(body), read_options=pj.ReadOptions(block_size=len(body) + 1, use_threads=False),
                             parse_options=pj.ParseOptions(explicit_schema=_response_schema(schema),
                                                           unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        page = parse_hits_json(body)
        return Page(hits_to_batch(page.payload, schema), page.hits, page.last_sort)
    outer = table.column("hits").combine_chunks()
    if len(outer) == 0 or outer.null_count == len(outer):
        return Page((pa.RecordBatch.from_pylist([], schema=schema), []), 0, None)
    hits = outer.field("hits").flatten()
    if len(hits) == 0:
        return Page((pa.RecordBatch.from_pylist([], schema=schema), []), 0, None)
    sources = pa.RecordBatch.from_struct_array(hits.field("_source"))
    last_sort = hits.field("sort")[len(hits) - 1].as_py()
    bad_rows = _rows_missing_required(sources.columns, schema)
    rejected = []
    if bad_rows:
        ids = hits.field("_id")
        rejected = [({"_id": ids[i].as_py(), "_source": sources.slice(i, 1).to_pylist()[0]}, reason)
                    for i, reason in sorted(bad_rows.items())]
        keep = [i for i in range(len(hits)) if i not in bad_rows]
        sources = sources.take(pa.array(keep, pa.int64()))
    batch = pa.RecordBatch.from_arrays(sources.columns, schema=schema)
    return Page((batch, rejected), len(hits), last_sort)


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
    # The store maps clock as a date (epoch_second): its aggregations answer in milliseconds.
    scale = 1000 if _field_type(es, index, "clock") in ("date", "date_nanos") else 1
    for bucket in composite_buckets(
            lambda aggs: es.search(index=index, size=0, track_total_hits=True, aggs=aggs),
            [{"itemid": {"terms": {"field": "itemid"}}}],
            {"min_clock": {"min": {"field": "clock"}}, "max_clock": {"max": {"field": "clock"}}},
            size=5000, name="items"):
        stats[str(int(bucket["key"]["itemid"]))] = {
            "rows": int(bucket["doc_count"]),
            "min_clock": int(bucket["min_clock"]["value"]) // scale,
            "max_clock": int(bucket["max_clock"]["value"]) // scale,
        }
    return stats


def _field_type(es, index: str, field: str) -> str | None:
    found = es.indices.get_field_mapping(index=index, fields=field)
    for mapping in found.values():
        for leaf in mapping.get("mappings", {}).values():
            return next(iter(leaf.get("mapping", {}).values()), {}).get("type")
    return None


def count(es, index: str) -> int:
    return int(es.count(index=index)["count"])
