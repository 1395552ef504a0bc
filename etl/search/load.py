"""Point batches -> Elasticsearch documents -> bulk requests.

Documents are built column-wise (DuckDB's to_json over the Arrow batch, no Python dict per row,
the action line written by the same query; an item's labels once per item of the batch and the
fields null in the whole batch once per batch), a bulk body is a slice of those ready NDJSON lines (no
JSON encoding and no Python string per document; the answers are filtered to status and error),
and per-document failures come back with the row they belong to so the caller can quarantine them.
A refusal for a passing reason (429/503, a write block) is re-sent by etl.search.retry, never
quarantined. Transport errors (node down, timeouts after retries) raise: the run fails and is re-run; ids make that converge."""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import functools
import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import StoreError
from etl.schema import point_schema, points_index

# Bounded memory: at most CHUNK_DOCS documents or CHUNK_BYTES per request, whatever the batch size.
CHUNK_DOCS = 5_000
CHUNK_BYTES = 16 * 1024 * 1024
# Bulk requests open at once: one node on 2 cores indexed 455,000 points at ~30,000 docs/s one
# request at a time and ~45,000 with two (each bulk shard request runs on one write thread).
IN_FLIGHT = 2

_local = threading.local()


def _duckdb():
    # One connection per thread: DuckDB connections are not shared across threads.
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads TO 1").fetchall()
        _local.con = con
    return con


_TIMESTAMP_SQL = ("strftime(make_timestamp(clock * 1000000), '%Y-%m-%dT%H:%M:%S') || '.' || "
                  "lpad(CAST(ns AS VARCHAR), 9, '0') || 'Z'")
# Same format as etl.schema.point_id (checked by tests/unit/etl/test_load.py).
_ID_SQL = ("source || ':' || CAST(itemid AS VARCHAR) || ':' || CAST(clock AS VARCHAR) || ':' || "
           "CAST(ns AS VARCHAR) || CASE WHEN resolution = 'raw' THEN '' ELSE ':' || resolution END")
# ids and index names never hold quotes or backslashes (digits, ':', '-', '.', a-z): safe as is
_ACTION_SQL = "'{\"index\":{\"_index\":\"' || _index || '\",\"_id\":\"' || _id || '\"}}'"
# The catalog's labels of a point: the same on every point of an item, so a batch writes their JSON
# once per item (a 5-minute batch holds ~5 points an item) and each document takes its item's.
ITEM_FIELDS = ("source", "host", "host_name", "host_groups", "key", "item_name", "units", "tags")


def _struct(names) -> str:
    return ", ".join(f'"{name}" := "{name}"' for name in names)


def _document_sql() -> str:
    """Per point its id, its index (the registered `_index` column) and its NDJSON pair: the `index`
    action line and the JSON document (every point field in schemas/point.json order + @timestamp),
    each ending in a newline."""
    doc = f'to_json(struct_pack("@timestamp" := {_TIMESTAMP_SQL}, {_struct(f.name for f in point_schema())}))'
    return (f"SELECT _id, _index, {_ACTION_SQL} || chr(10) || doc || chr(10) AS line "
            f"FROM (SELECT {_ID_SQL} AS _id, _index, {doc} AS doc FROM points)")


_LINE_SQL = _document_sql()
_ITEM_SQL = f"SELECT to_json(struct_pack({_struct(ITEM_FIELDS)})) AS doc FROM items"
# the fields of each point's own JSON (besides @timestamp), in schema order
_POINT_FIELDS = tuple(f.name for f in point_schema() if f.name not in ITEM_FIELDS)


@functools.lru_cache(maxsize=64)
def _point_sql(fields: tuple[str, ...]) -> str:
    """Per point its id, index, action line (with its newline) and the JSON of `fields` + @timestamp."""
    doc = f'to_json(struct_pack("@timestamp" := {_TIMESTAMP_SQL}{", " if fields else ""}{_struct(fields)}))'
    return (f"SELECT _id, _index, {_ACTION_SQL} || chr(10) AS head, doc "
            f"FROM (SELECT {_ID_SQL} AS _id, _index, {doc} AS doc FROM points)")


def index_names(batch: pa.RecordBatch, prefix: str) -> pa.Array:
    """Index of each point: by its source and the UTC date of its clock (etl.schema.points_index)."""
    day = pc.divide(batch.column("clock"), 86400)
    key = pc.binary_join_element_wise(batch.column("source"), pc.cast(day, pa.string()), "|")
    distinct = pc.unique(key)
    names = []
    for value in distinct.to_pylist():
        source, _, day_number = value.rpartition("|")
        date = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))
        names.append(points_index(prefix, source, date))
    return pc.take(pa.array(names, type=pa.string()), pc.index_in(key, value_set=distinct))


_INDEX_OP, _CREATE_OP = '{"index":', '{"create":'


class Documents:
    """The bulk documents of a batch, in row order.

    Built from a batch (`documents`), every document is one NDJSON pair, its action line and its
    source, each ending in a newline, in one Arrow array: a bulk body is one slice of that array's
    buffer, with no Python string per document (at 100,000 items a 5-minute interval is ~455,000
    documents, ~370 MB of JSON). `ids`, `indices` and `sources` are Python lists made on first use
    (tests, benchmarks, the retry's messages); once one of them is made, bodies are joined from the
    lists, so a caller that edits one sends what it edited. Made from lists (`Documents(ids,
    indices, sources)`), it works from the lists throughout."""

    def __init__(self, ids: list[str] | None, indices: list[str] | None, sources: list[str] | None,
                 create: list[bool] | None = None):
        self._ids, self._indices, self._sources = ids, indices, sources
        self._lines: pa.Array | None = None   # NDJSON pairs, when built from a batch
        self._id_array: pa.Array | None = None
        self._index_array: pa.Array | None = None
        # Rows sent as `create` (re-read overlap): an id already stored answers 409 and is counted as
        # already stored, so re-reading never rewrites (a delete + insert to merge away). None: all `index`.
        self.create = create

    @classmethod
    def _from_lines(cls, ids: pa.Array, indices: pa.Array, lines: pa.Array) -> "Documents":
        if lines.null_count:
            raise StoreError(f"{lines.null_count} documents could not be built (a null id field)")
        docs = cls(None, None, None)
        docs._id_array, docs._index_array, docs._lines = ids, indices, lines
        return docs

    def __len__(self) -> int:
        return len(self._lines) if self._ids is None else len(self._ids)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = self._id_array.to_pylist()
        return self._ids

    @property
    def indices(self) -> list[str]:
        if self._indices is None:
            self._indices = self._index_array.to_pylist()
        return self._indices

    @property
    def sources(self) -> list[str]:
        if self._sources is None:
            self._sources = [line[line.index("\n") + 1:-1] for line in self._lines.to_pylist()]
        return self._sources

    def index_set(self) -> set[str]:
        """The indices the documents go to (without a list of one name per document)."""
        if self._indices is None:
            return set(pc.unique(self._index_array).to_pylist())
        return set(self._indices)

    def index_of(self, row: int) -> str:
        return self._index_array[row].as_py() if self._indices is None else self._indices[row]

    def _from_arrays(self) -> bool:
        """Bodies come from the Arrow lines: nothing was made into a list that could have been edited."""
        return self._lines is not None and self._ids is None and self._indices is None and self._sources is None

    def subset(self, rows: list[int]) -> "Documents":
        """The documents at `rows`, in that order (a retry re-sends only what was refused)."""
        create = [self.create[r] if r < len(self.create) else False for r in rows] if self.create else None
        if self._from_arrays():
            at = pa.array(rows, type=pa.int64())
            docs = Documents._from_lines(self._id_array.take(at), self._index_array.take(at), self._lines.take(at))
            docs.create = create
            return docs
        return Documents([self.ids[r] for r in rows], [self.indices[r] for r in rows],
                         [self.sources[r] for r in rows], create)

    def create_before(self, batch: pa.RecordBatch, before_ns: int) -> "Documents":
        """Send the points older than `before_ns` (epoch ns) as `create`; the rest stay `index`."""
        if len(self) and batch.num_rows == len(self):
            at = pc.add(pc.multiply(pc.cast(batch.column("clock"), pa.int64()), 1_000_000_000),
                        pc.cast(batch.column("ns"), pa.int64()))
            mask = pc.less(at, before_ns)
            self.create = mask.to_pylist()
            if self._lines is not None and pc.any(mask).as_py():
                created = pc.replace_substring(self._lines, _INDEX_OP, _CREATE_OP, max_replacements=1)
                self._lines = pc.if_else(mask, created, self._lines)
        return self

    def ops(self) -> list[str]:
        """The bulk operation of each document, in row order."""
        marks = self.create or ()
        return ["create" if row < len(marks) and marks[row] else "index" for row in range(len(self))]

    def actions(self):
        """(action, source) pairs for streaming_bulk with `as_is`; the action is a dict, small."""
        for op, _id, index, source in zip(self.ops(), self.ids, self.indices, self.sources):
            yield {op: {"_index": index, "_id": _id}}, source


def documents(batch: pa.RecordBatch, prefix: str) -> Documents:
    """Documents of a validated batch (clock/ns present, text valid UTF-8). An item's labels
    (ITEM_FIELDS) are written once per item and fields null in the whole batch once per batch;
    a batch where some item's labels differ between its points (replayed records of a renamed
    item) is written point by point, as is one with too few points an item to gain."""
    items = _items_of(batch) if batch.num_rows else None
    if items is None:
        return documents_by_point(batch, prefix)
    first, of_row = items
    live = tuple(name for name in _POINT_FIELDS if batch.column(name).null_count < batch.num_rows)
    nulls = "".join(f',"{name}":null' for name in _POINT_FIELDS if name not in live)
    built = _query("points", batch.append_column("_index", index_names(batch, prefix)), _point_sql(live))
    labels = _one_array(_query("items", batch.select(list(ITEM_FIELDS)).take(pa.array(first)), _ITEM_SQL)
                        .column("doc"))
    # '{labels' + the batch's nulls + ',' per item, then '"@timestamp":...}' of each point after it
    opening = pc.binary_join_element_wise(pc.utf8_slice_codeunits(labels, 0, -1), pa.scalar(nulls + ","), "")
    lines = pc.binary_join_element_wise(_one_array(built.column("head")), opening.take(pa.array(of_row)),
                                        pc.utf8_slice_codeunits(_one_array(built.column("doc")), 1),
                                        pa.scalar("\n"), "")
    return Documents._from_lines(_one_array(built.column("_id")), _one_array(built.column("_index")), lines)


def documents_by_point(batch: pa.RecordBatch, prefix: str) -> Documents:
    """The documents of `batch` written point by point (every field in schema order): the reference
    `documents` is checked against, and its path for batches it cannot share labels in."""
    if batch.num_rows == 0:
        return Documents([], [], [])
    built = _query("points", batch.append_column("_index", index_names(batch, prefix)), _LINE_SQL)
    return Documents._from_lines(*(_one_array(built.column(name)) for name in ("_id", "_index", "line")))


def _query(name: str, data, sql: str) -> pa.Table:
    con = _duckdb()
    con.register(name, data)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister(name)


def _items_of(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray] | None:
    """(first row of each item, each row's item) when every point of an item carries the same
    labels and items have 2+ points on average; None otherwise."""
    itemid = batch.column("itemid")
    if itemid.null_count:
        return None
    _, first, of_row = np.unique(itemid.to_numpy(zero_copy_only=False), return_index=True, return_inverse=True)
    of_row = of_row.reshape(-1)
    if 2 * len(first) > batch.num_rows:
        return None
    same_item = pa.array(first[of_row])
    for name in ITEM_FIELDS:
        column = batch.column(name)
        if not _equal(column, column.take(same_item)):
            return None
    return first, of_row


def _equal(a: pa.Array, b: pa.Array) -> bool:
    """Whether two arrays of one type hold the same values row by row (nulls equal nulls)."""
    if a.null_count or b.null_count:
        if not pc.all(pc.equal(pc.is_null(a), pc.is_null(b))).as_py():
            return False
    if pa.types.is_list(a.type) or pa.types.is_large_list(a.type):
        lengths = pc.equal(pc.fill_null(pc.list_value_length(a), 0), pc.fill_null(pc.list_value_length(b), 0))
        return bool(pc.all(lengths).as_py() is not False) and _equal(pc.list_flatten(a), pc.list_flatten(b))
    if pa.types.is_struct(a.type):
        return all(_equal(x, y) for x, y in zip(a.flatten(), b.flatten()))
    same = pc.equal(a, b)
    return bool(pc.all(same).as_py() is not False)  # null where both are null: already compared


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    # combine_chunks copies even a single chunk: ~8 MB of lines a 10,000-row batch
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def as_is(action):
    """streaming_bulk's expand_action_callback for pre-built (action, source) pairs."""
    return action


@dataclass
class LoadResult:
    loaded: int = 0             # stored by this request or already stored (existing counts in too)
    existing: int = 0           # `create` answered 409: the same point id was already stored
    failed: dict[int, str] = field(default_factory=dict)  # row of the batch -> reason
    chunks: int = 0


def _reason(item: dict) -> str:
    error = item.get("error") or {}
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by") or {}
        if cause:
            text += f" ({cause.get('type')}: {cause.get('reason')})"
    else:
        text = str(error)
    return f"elasticsearch rejected the document: HTTP {item.get('status')} {text}"[:2000]


def bulk(client, docs: Documents, *, chunk_docs: int = CHUNK_DOCS, chunk_bytes: int = CHUNK_BYTES,
         on_chunk=None, in_flight: int = IN_FLIGHT) -> LoadResult:
    """Index `docs`; returns how many loaded and which rows failed (with Elasticsearch's reason).
    Documents refused by an index write block are re-sent until it lifts (etl.search.retry).

    `in_flight` requests are kept open at once; `on_chunk(n_docs)` is called after each
    acknowledged request, in request order (progress; tests inject faults)."""
    from etl.search.retry import retry_blocked_items

    result = _bulk_once(client, docs, chunk_docs=chunk_docs, chunk_bytes=chunk_bytes, on_chunk=on_chunk,
                        in_flight=in_flight)
    return retry_blocked_items(client, docs, lambda subset: _bulk_once(
        client, subset, chunk_docs=chunk_docs, chunk_bytes=chunk_bytes, in_flight=in_flight), result)


# Each bulk answer carries only what the loader reads: per item its status and, if refused, the
# error (a 5,000-item answer shrinks from ~1 MB to ~60 kB, and decoding it no longer dominates).
BULK_FILTER = "errors,items.*.status,items.*.error"


def _chunks(docs: Documents, chunk_docs: int, chunk_bytes: int):
    """(first row, documents, NDJSON body) per bulk request: at most chunk_docs documents or
    ~chunk_bytes (a single larger document goes alone)."""
    if docs._from_arrays():
        yield from _slices(docs._lines, chunk_docs, chunk_bytes)
        return
    lines: list[bytes] = []
    size, first = 0, 0
    for row, (op, _id, index, source) in enumerate(zip(docs.ops(), docs.ids, docs.indices, docs.sources)):
        line = f'{{"{op}":{{"_index":"{index}","_id":"{_id}"}}}}\n{source}\n'.encode()
        if lines and (len(lines) >= chunk_docs or size + len(line) > chunk_bytes):
            yield first, len(lines), b"".join(lines)
            lines, size, first = [], 0, row
        lines.append(line)
        size += len(line)
    if lines:
        yield first, len(lines), b"".join(lines)


def _slices(lines: pa.Array, chunk_docs: int, chunk_bytes: int):
    """The bodies of `_chunks` cut straight from the lines' buffer: a request is one copy of bytes."""
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    _, offsets_buffer, data = lines.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width)[lines.offset:lines.offset + len(lines) + 1].astype(np.int64)
    first, n = 0, len(lines)
    while first < n:
        end = min(first + chunk_docs, n)
        if offsets[end] - offsets[first] > chunk_bytes:
            fits = int(np.searchsorted(offsets, offsets[first] + chunk_bytes, side="right")) - 1
            end = max(first + 1, min(end, fits))
        yield first, end - first, data[offsets[first]:offsets[end]].to_pybytes()
        first = end


def _bulk_once(client, docs: Documents, *, chunk_docs: int, chunk_bytes: int, on_chunk=None,
               in_flight: int = 1) -> LoadResult:
    """One pass over `docs`: bulk bodies are joined from the pre-serialised lines (no JSON encoding of
    an action per document), answers filtered to status and error. Items answer in request order,
    so item i of a request is row first + i. Per-document refusals are returned in `failed`
    (retry_blocked_items re-sends the passing ones); transport failures raise StoreError. With
    `in_flight` > 1 that many requests are open at once; answers are taken in request order."""
    result = LoadResult()

    def send(body: bytes) -> dict:
        answer = client.bulk(operations=body, filter_path=BULK_FILTER)
        return getattr(answer, "body", answer)

    def take(first: int, n_docs: int, answer: dict) -> None:
        items = answer.get("items") or []
        if len(items) != n_docs:
            raise StoreError(f"bulk answer holds {len(items)} items for {n_docs} documents")
        if not answer.get("errors"):
            result.loaded += n_docs
        else:
            for offset, item in enumerate(items):
                ((op, detail),) = item.items()
                status = detail.get("status", 0)
                if 200 <= status < 300:
                    result.loaded += 1
                elif op == "create" and status == 409:
                    result.loaded += 1
                    result.existing += 1
                else:
                    result.failed[first + offset] = _reason(detail)
        result.chunks += 1
        if on_chunk is not None:
            on_chunk(result.loaded + len(result.failed))

    pool = _bulk_pool(in_flight) if in_flight > 1 else None
    pending: collections.deque = collections.deque()
    try:
        for first, n_docs, body in _chunks(docs, chunk_docs, chunk_bytes):
            if pool is None:
                take(first, n_docs, send(body))
                continue
            if len(pending) >= in_flight:
                take(*pending[0][:2], pending[0][2].result())
                pending.popleft()
            pending.append((first, n_docs, pool.submit(send, body)))
        while pending:
            take(*pending[0][:2], pending[0][2].result())
            pending.popleft()
    except StoreError:  # already says what happened (Elasticsearch unreachable, index blocked)
        raise
    except Exception as exc:
        from etl.search.client import redact_url

        raise StoreError(f"bulk load to Elasticsearch failed after {result.loaded} documents: "
                         f"{redact_url(str(exc))[:500]}") from None
    finally:
        # a failure leaves no request running behind the caller's back
        concurrent.futures.wait([future for *_, future in pending if not future.cancel()])
    return result


_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _bulk_pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """One pool per size for the process: a run sends thousands of requests, threads are reused."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="es-bulk")
        return _POOLS[workers]
