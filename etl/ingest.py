"""Metric ingestion: source -> validation -> Elasticsearch, plus gaps, backfill and replay.

    run(settings, "zabbix", window)        one window (the DAG task and `monetl ingest`)
    gaps(settings, "zabbix", window)       per-bucket counts, source vs Elasticsearch
    backfill(settings, "zabbix", window)   ingest exactly the buckets gaps reports
    replay(settings, path)                 re-validate and load quarantined points

Idempotent by construction: every point has a deterministic `_id` in the daily index of its own
clock, so a re-run, an overlap or a backfill overwrites instead of adding. A run killed half-way is
repaired by running the same window again.

Run ids are deterministic per source and window, e.g.
`zabbix:2026-11-25T00:00:00Z/2026-11-25T00:05:00Z` (the window asked for, not the widened
extraction window): retries of one Airflow run and a manual re-run of the same window share it,
so the quarantine file of a window is one file whatever the attempt. A point's `run_id` field names
the run that wrote it.

Extraction is widened backwards by `overlap` (default 10 min): a value Zabbix receives late (proxy
buffer, agent reconnect) for a window already loaded is picked up by the next run. Overlap points
go as bulk `create`, so those already stored are answered 409 and counted (`already_stored`)
instead of being rewritten: a run writes about its new points only, and the day index gathers no
deleted documents. With the previous run's memory (etl.overlap_memory) overlap points it loaded
are not sent, and where the source's counts match the memory (etl.overlap_check) not even read. The window's own points (and backfill, replay) use `index`, so a re-run after a
fix still overwrites changed values."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import gc
import itertools
import logging
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl import quality
from etl.config import Settings
from etl.errors import ConfigError, MonetlError
from etl.health.push import reports
from etl.quarantine import Quarantine
from etl.window import Window

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = dt.timedelta(minutes=10)
QUARANTINE_AREA = "points"
_TYPE_NAMES = {0: "float", 1: "char", 2: "log", 3: "uint", 4: "text"}


def run_id_for(source: str, window: Window) -> str:
    return f"{source}:{window.start:%Y-%m-%dT%H:%M:%SZ}/{window.end:%Y-%m-%dT%H:%M:%SZ}"


@dataclass
class Summary:
    source: str
    mode: str
    window: str
    extraction_window: str
    run_id: str
    read: dict[str, int] = field(default_factory=dict)          # per value type name
    loaded: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)   # validation + load, per value type
    quarantined_at_source: int = 0                              # records the source could not convert
    load_failures: int = 0                                      # documents Elasticsearch refused
    already_stored: int = 0                                     # overlap points found stored (not rewritten)
    overlap_reread_s: int | None = None                         # overlap seconds read again (None: all)
    overlap_settled: int = 0                                    # of already_stored: not read (counts matched)
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    indices: list[str] = field(default_factory=list)
    ge_rows_checked: int = 0                                    # rows GE validated (a sample)
    ge_failed: dict[str, int] = field(default_factory=dict)     # GE's failed expectations on them
    ge_seconds: float = 0.0
    seconds: float = 0.0
    # where the run's time went: before the first point was ready (catalog, template), the loader
    # waiting for the source, the loader inside bulk requests (Elasticsearch); a run bound by
    # Elasticsearch has bulk_seconds close to seconds
    first_batch_seconds: float = 0.0
    source_wait_seconds: float = 0.0
    bulk_seconds: float = 0.0
    refresh_seconds: float = 0.0                                # making the run's documents searchable

    @property
    def points_read(self) -> int:
        return sum(self.read.values())

    @property
    def points_loaded(self) -> int:
        return sum(self.loaded.values())

    @property
    def points_quarantined(self) -> int:
        return sum(self.quarantined.values()) + self.quarantined_at_source

    @property
    def ok(self) -> bool:
        """False if any valid point failed to load (the CLI exits non-zero; the DAG task fails)."""
        return self.load_failures == 0

    def to_dict(self) -> dict:
        """Small and JSON-friendly: the DAG task's XCom."""
        out = asdict(self)
        out.update(points_read=self.points_read, points_loaded=self.points_loaded,
                   points_quarantined=self.points_quarantined, ok=self.ok)
        return out

    def line(self) -> str:
        rate = self.points_loaded / self.seconds if self.seconds else 0.0
        text = (f"{self.source}/{self.mode} {self.window}: read {self.points_read}, loaded {self.points_loaded}, "
                f"quarantined {self.points_quarantined} in {self.seconds:.1f}s ({rate:,.0f} points/s)")
        if self.already_stored:
            text += f"; {self.already_stored} overlap points were already stored"
        if self.overlap_reread_s is not None:
            text += (f"; overlap: {self.overlap_settled} points matched the source's counts and were not re-read, "
                     f"{self.overlap_reread_s}s re-read")
        if self.quarantine_path:
            text += f"; quarantine {self.quarantine_path}"
        return text


def _by_type(batch: pa.RecordBatch) -> Counter:
    counts: Counter = Counter()
    if batch.num_rows:
        for entry in pc.value_counts(batch.column("value_type")).to_pylist():
            counts[_TYPE_NAMES.get(entry["values"], str(entry["values"]))] += entry["counts"]
    return counts


class _SharedQuarantine:
    """The source writes to the quarantine from the extraction thread, the loader from the main
    thread: one lock around the file. Every record names its source, so an extract-stage record
    (which a source builds from the raw row) is traceable and keyed like a point."""

    def __init__(self, inner: Quarantine, source: str | None = None):
        self.inner = inner
        self.source = source
        self.lock = threading.Lock()

    def add(self, record, reason: str, ref: str = "", stage: str = "", key: str | None = None) -> None:
        if self.source and isinstance(record, dict) and not record.get("source"):
            record = {"source": self.source, **record}
        with self.lock:
            self.inner.add(record, reason, ref, stage, key=key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Progress:
    """Rich live counter on a terminal, a plain line every few seconds otherwise (Airflow logs)."""

    def __init__(self, mode: str, title: str):
        if mode == "auto":
            mode = "rich" if sys.stderr.isatty() else "plain"
        self.mode, self.title = mode, title
        self.read = self.loaded = self.quarantined = 0
        self._last_plain = 0.0
        self._started = time.monotonic()
        self._rich = None
        if mode == "rich":
            from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._rich = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      transient=False)
            self._task = self._rich.add_task(title)
            self._rich.start()

    def update(self, read: int = 0, loaded: int = 0, quarantined: int = 0) -> None:
        self.read += read
        self.loaded += loaded
        self.quarantined += quarantined
        text = f"{self.title}: read {self.read:,} loaded {self.loaded:,} quarantined {self.quarantined:,}"
        if self._rich is not None:
            self._rich.update(self._task, description=text)
        elif self.mode == "plain" and time.monotonic() - self._last_plain >= 5:
            self._last_plain = time.monotonic()
            log.info("%s", text)  # logging, not stderr: Airflow 3 logs a task's stderr at ERROR

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self.mode == "plain":
            log.info("%s: done, read %s loaded %s quarantined %s in %.1fs", self.title, f"{self.read:,}",
                     f"{self.loaded:,}", f"{self.quarantined:,}", time.monotonic() - self._started)


@dataclass
class _Prepared:
    batch: pa.RecordBatch       # the rows that passed validation
    checked: quality.Checked
    raw: pa.RecordBatch         # the batch as read (for quarantined records)
    docs: object                # etl.search.load.Documents
    known: pa.RecordBatch | None = None  # valid overlap rows an earlier run loaded: not sent again


_DONE = object()
# Rows per unit of work (validate, build documents, bulk): source batches are sliced to this, so the
# documents in flight stay a few MB whatever the source's batch size and the window's length.
WORK_ROWS = 10_000


def _prepare_in_background(batches: Iterator[pa.RecordBatch], window: Window, prefix: str,
                           sampler: quality.GESampler | None, depth: int = 1, create_before_ns: int | None = None,
                           known=None):
    """Extract, validate and build documents in a thread while the caller bulk-loads: extraction waits
    on the source, bulk on Elasticsearch, so the two overlap. A bounded queue keeps memory flat."""
    from etl.search.load import documents

    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for source_batch in batches:
                for offset in range(0, source_batch.num_rows, WORK_ROWS):
                    if stop.is_set():
                        return
                    raw = source_batch.slice(offset, WORK_ROWS)
                    checked = quality.check(raw, window)
                    if sampler is not None:
                        sampler.offer(raw, checked.failed)
                    good, seen = checked.good, None
                    if known is not None and good.num_rows:
                        mask = known.mask(good)
                        if mask.any():
                            seen = good.filter(pa.array(mask))
                            good = good.filter(pa.array(~mask))
                    docs = documents(good, prefix)
                    if create_before_ns is not None:
                        docs.create_before(good, create_before_ns)
                    put(_Prepared(good, checked, raw, docs, seen))
                del source_batch
            if sampler is not None:
                sampler.finish()
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=work, name="ingest-extract", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


@contextlib.contextmanager
def _opened(settings: Settings, source, mode: str | None, hosts: list[str] | None = None):
    """A source by name is opened here and closed after (sessions, DB connections); a PointSource
    passed in belongs to the caller."""
    if not isinstance(source, str):
        yield source
        return
    from etl.sources import open_source

    point_source = open_source(source, settings, mode, **({"hosts": list(hosts)} if hosts else {}))
    try:
        yield point_source
    finally:
        close = getattr(point_source, "close", None)
        if close is not None:
            close()


@reports("ingest")
def run(settings: Settings, source, window: Window, mode: str | None = None, run_id: str | None = None,
        overlap: dt.timedelta = DEFAULT_OVERLAP, *, progress: str = "none", use_ge: bool = True,
        client=None, on_chunk: Callable[[int], None] | None = None, chunk_docs: int | None = None,
        hosts: list[str] | None = None, refresh: bool = True) -> Summary:
    """Ingest `window` (widened back by `overlap`) of `source` ("zabbix" | "kcmm" or a PointSource)
    into Elasticsearch. Bad points go to the quarantine with their reason; the rest loads.

    refresh: make the run's documents searchable before returning, for a reader that comes right
    after (an operator's `monetl gaps`, tests). The scheduled task passes False: nothing reads
    behind it, Elasticsearch makes them searchable within its refresh_interval (30 s) anyway, and
    the refresh was up to 1.2 s of a design-scale interval with the node doing nothing else.

    progress: "auto" (rich on a terminal, plain lines otherwise), "rich", "plain" or "none".
    on_chunk(n) is called after each acknowledged bulk request with the documents done so far in the
    current batch; chunk_docs overrides the bulk request size (tests use both to stop a run mid-way).
    hosts narrows a source given by name to these technical host names."""
    with _opened(settings, source, mode, hosts) as point_source, _old_objects_frozen():
        return _run(settings, point_source, window, run_id, overlap, progress, use_ge, client, on_chunk, chunk_docs,
                    refresh)


_frozen = 0
_frozen_lock = threading.Lock()


@contextlib.contextmanager
def _old_objects_frozen():
    """Keep the objects that exist when a run starts (modules, the GE runtime, caches) out of the
    collector's full passes while it runs: they live on anyway, and scanning them is what full
    collections cost. A 100,000-item interval spent 0.9-1.3 s of CPU in the collector (most of
    it under the bulk answers' decoding), 0.2 s so. Nested or concurrent runs share one freeze."""
    global _frozen
    with _frozen_lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()


def _run(settings, point_source, window, run_id, overlap, progress, use_ge, client, on_chunk, chunk_docs,
         refresh=True) -> Summary:
    from etl.search import load
    from etl.search.client import es_client
    from etl.search.templates import apply_points_template

    started = time.monotonic()
    if overlap < dt.timedelta(0):
        raise ConfigError(f"overlap must not be negative, got {overlap}")
    extraction = window.widened(before=overlap) if overlap else window
    run_id = run_id or run_id_for(point_source.name, window)
    summary = Summary(source=point_source.name, mode=point_source.mode, window=str(window),
                      extraction_window=str(extraction), run_id=run_id)
    client = client or es_client(settings)
    apply_points_template(client, settings)
    read, loaded, bad = Counter(), Counter(), Counter()
    touched: set[str] = set()
    sampler = quality.GESampler(extraction) if use_ge else None
    meter = Progress(progress, f"ingest {point_source.name}/{point_source.mode}")
    quarantine = Quarantine(settings, QUARANTINE_AREA, run_id)
    shared = _SharedQuarantine(quarantine, point_source.name)
    memory = _OverlapMemory(settings, client, point_source, window, overlap) if overlap else None
    # With a memory the source can count against, the window is read first while the overlap is
    # settled by counts in a thread (etl.overlap_check); then only its unsettled slices are read.
    settling = None
    if memory is not None and memory.can_settle(point_source, window, extraction):
        settling = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="overlap-settle")
        overlap_reads = settling.submit(memory.overlap_reads, point_source, window, extraction)

    def reads() -> Iterator[Window]:
        if settling is None:
            yield extraction
        else:
            yield window
            yield from overlap_reads.result()

    try:
        batches = itertools.chain.from_iterable(point_source.extract(w, run_id, shared) for w in reads())
        # The overlap only adds what is missing (late values): points already stored are not rewritten,
        # and those the previous run recorded as loaded are not even sent (etl.overlap_memory).
        create_before = window.start_ns if extraction.start_ns < window.start_ns else None
        flight = max(1, settings.es_bulk_in_flight)
        # Batches are loaded `flight` at a time, each one request after another, so the node keeps
        # `flight` requests to work on across batch boundaries (one batch's requests all open at once
        # left a write thread idle while the batch's last request finished). The next batch starts
        # as soon as any one ends: a short batch (the last of a value type) that ends before a long
        # one left its thread idle until the long one was done, ~0.7 s of one request in flight per
        # design-scale interval. Results are still taken in batch order: quarantine, counts and
        # the overlap memory see the batches as read.
        loading = concurrent.futures.ThreadPoolExecutor(flight, thread_name_prefix="ingest-bulk") if flight > 1 else None
        pending: collections.deque = collections.deque()

        def send(prepared: _Prepared):
            return load.bulk(client, prepared.docs, on_chunk=on_chunk, chunk_docs=chunk_docs or load.CHUNK_DOCS,
                             in_flight=1 if loading is not None else settings.es_bulk_in_flight)

        def account(prepared: _Prepared, result) -> None:
            nonlocal loaded, bad
            touched.update(prepared.docs.index_set())
            failed_rows = sorted(result.failed)
            if failed_rows:
                _quarantine_rows(shared, prepared.batch, failed_rows, result.failed, "load")
                bad += _by_type(prepared.batch.take(pa.array(failed_rows, type=pa.int64())))
                summary.load_failures += len(failed_rows)
            loaded += _by_type(prepared.batch) - (_by_type(prepared.batch.take(pa.array(failed_rows, type=pa.int64())))
                                                  if failed_rows else Counter())
            summary.already_stored += result.existing
            if prepared.known is not None:
                loaded += _by_type(prepared.known)
                summary.already_stored += prepared.known.num_rows
            if memory is not None:
                memory.add(prepared, failed_rows)
            meter.update(loaded=result.loaded + (prepared.known.num_rows if prepared.known is not None else 0),
                         quarantined=len(failed_rows))

        def take_oldest() -> None:
            prepared, future = pending.popleft()
            bulk_started = time.monotonic()
            result = future.result()
            summary.bulk_seconds += time.monotonic() - bulk_started
            account(prepared, result)

        def make_room() -> None:
            """Return once fewer than `flight` batches are in the node; finished ones are
            accounted oldest first, and at most 2 x flight are held (their results kept for order)."""
            while True:
                while pending and pending[0][1].done():
                    take_oldest()
                if any(future.done() and future.exception() for _, future in pending):
                    while pending:  # a failed batch: account those before it, then raise its error
                        take_oldest()
                running = [future for _, future in pending if not future.done()]
                if len(running) < flight and len(pending) < 2 * flight:
                    return
                if len(running) < flight:  # enough results held: wait for the oldest
                    take_oldest()
                    continue
                bulk_started = time.monotonic()
                concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                summary.bulk_seconds += time.monotonic() - bulk_started

        try:
            waited = time.monotonic()
            for prepared in _prepare_in_background(batches, extraction, settings.es_index_prefix, sampler,
                                                   create_before_ns=create_before,
                                                   known=memory.known if memory else None):
                if not summary.first_batch_seconds:
                    summary.first_batch_seconds = time.monotonic() - started
                else:
                    summary.source_wait_seconds += time.monotonic() - waited
                raw, checked = prepared.raw, prepared.checked
                read += _by_type(raw)
                _quarantine_rows(shared, raw, checked.bad_rows, checked.reasons, "validate")
                bad += _by_type(raw.take(pa.array(checked.bad_rows, type=pa.int64()))) if checked.bad_rows else Counter()
                meter.update(read=raw.num_rows, quarantined=len(checked.bad_rows))
                if loading is None:
                    bulk_started = time.monotonic()
                    result = send(prepared)
                    summary.bulk_seconds += time.monotonic() - bulk_started
                    account(prepared, result)
                else:
                    make_room()
                    pending.append((prepared, loading.submit(send, prepared)))
                waited = time.monotonic()
            while pending:
                take_oldest()
        finally:
            if loading is not None:
                # a failure leaves no request running behind the caller's back
                concurrent.futures.wait([future for _, future in pending if not future.cancel()])
                loading.shutdown(wait=True)
        if settling is not None and memory.settled_s is not None:
            summary.overlap_reread_s = sum(w.end_s - w.start_s for w in overlap_reads.result())
            # stored points as much as the overlap rows found stored: counted loaded and already stored
            settled = memory.settled_by_type()
            summary.overlap_settled = sum(settled.values())
            loaded += settled
            summary.already_stored += summary.overlap_settled
        # Two-phase sources (kcmm/csv) record their input as consumed only now that every bulk
        # request was acknowledged; on any failure above they forget it and re-read next time.
        getattr(point_source, "commit", lambda: None)()
        if memory is not None and summary.load_failures == 0:
            memory.save()
    finally:
        getattr(point_source, "abandon", lambda: None)()
        if sampler is not None:
            sampler.close()
        if settling is not None:
            settling.shutdown(wait=False, cancel_futures=True)
        quarantine.close()
        meter.close()
    if touched and refresh:
        # Readers (gaps, tests, the compaction check) see the run's documents now, not after 30 s.
        refresh_started = time.monotonic()
        client.indices.refresh(index=",".join(sorted(touched)), ignore_unavailable=True)
        summary.refresh_seconds = time.monotonic() - refresh_started
    summary.read, summary.loaded, summary.quarantined = dict(read), dict(loaded), dict(bad)
    summary.quarantined_at_source = quarantine.count - sum(bad.values())
    summary.reasons = dict(quarantine.reasons)
    summary.quarantine_path = str(quarantine.path) if quarantine.count else None
    summary.indices = sorted(touched)
    summary.seconds = time.monotonic() - started
    if sampler is not None:
        summary.ge_rows_checked, summary.ge_seconds = sampler.total.rows_checked, sampler.total.seconds
        summary.ge_failed = dict(sampler.total.failed)
        if summary.ge_failed:
            log.info("Great Expectations on %d sampled rows: %s", summary.ge_rows_checked, summary.ge_failed)
    log.info("%s", summary.line())
    return summary


class _OverlapMemory:
    """The run's side of etl.overlap_memory: recall what the previous run loaded in this run's
    overlap, record what this run loads in the next run's."""

    def __init__(self, settings: Settings, client, point_source, window: Window, overlap: dt.timedelta):
        from etl import overlap_memory

        self.client, self.prefix, self.source = client, settings.es_index_prefix, point_source.name
        scope = (getattr(point_source, "hosts", None) or None, getattr(point_source, "itemids", None) or None)
        self.path = overlap_memory.memory_path(settings.home, self.prefix, self.source, scope)
        overlap_ns = int(overlap.total_seconds() * 1e9)
        self.next_span = (window.end_ns - overlap_ns, window.end_ns)
        self.known = overlap_memory.recall(self.path, window.start_ns - overlap_ns, window.start_ns, self._uuids)
        self.recorder = overlap_memory.Recorder(*self.next_span)
        self.settled_s: list[tuple[int, int]] | None = None  # overlap spans not re-read (counts matched)

    def can_settle(self, point_source, window: Window, extraction: Window) -> bool:
        """Whether the overlap can be settled by counts: a memory with value types, a source that
        counts, whole seconds (counts are per second)."""
        return not (self.known is None or self.known.vt is None or getattr(point_source, "raw_count", None) is None
                    or extraction.start >= window.start or extraction.start.microsecond
                    or window.start.microsecond)

    def overlap_reads(self, point_source, window: Window, extraction: Window) -> list[Window]:
        """The overlap slices to extract: only those where the source holds points the memory does
        not (etl.overlap_check); the whole overlap when counting fails or cannot decide."""
        from etl import overlap_check

        count = point_source.raw_count
        whole = [Window(extraction.start, window.start)]
        try:
            times = self.known.times_in_tables(point_source.table_types(self.known.items))

            def known(lo_s: int, hi_s: int) -> int:
                return int(np.searchsorted(times, hi_s * 1_000_000_000) - np.searchsorted(times, lo_s * 1_000_000_000))

            def source(lo_s: int, hi_s: int) -> int | None:
                return count(Window(lo_s, hi_s))

            lo_s, hi_s = extraction.start_s, window.start_s
            reread = overlap_check.unsettled(lo_s, hi_s, source, known)
        except MonetlError as exc:  # counting only saves work: read the whole overlap instead
            log.info("overlap not settled by counts (%s): re-reading it", exc)
            return whole
        if reread is None:
            return whole
        self.settled_s = overlap_check.settled(lo_s, hi_s, reread)
        return [Window(lo, hi) for lo, hi in reread]

    def _uuids(self, names: list[str]) -> dict[str, str]:
        got = self.client.indices.get_settings(index=",".join(names), name="index.uuid", ignore_unavailable=True,
                                               allow_no_indices=True, expand_wildcards="open,closed")
        got = getattr(got, "body", got)
        return {name: body["settings"]["index"]["uuid"] for name, body in got.items()}

    def add(self, prepared: "_Prepared", failed_rows) -> None:
        self.recorder.add(prepared.batch, failed_rows)
        if prepared.known is not None:
            self.recorder.add(prepared.known, ())

    def settled_by_type(self) -> Counter:
        """The remembered points of the settled spans, per value type name."""
        counts: Counter = Counter()
        for lo_s, hi_s in self.settled_s or ():
            _, _, vt = self.known.ids(lo_s * 1_000_000_000, hi_s * 1_000_000_000)
            for value_type, n in zip(*np.unique(vt, return_counts=True)):
                counts[_TYPE_NAMES.get(int(value_type), str(value_type))] += int(n)
        return counts

    def save(self) -> None:
        from etl.schema import points_index

        for lo_s, hi_s in self.settled_s or ():
            # settled slices were not read: their ids are the memory's, verified by the counts
            self.recorder.add_ids(*self.known.ids(lo_s * 1_000_000_000, hi_s * 1_000_000_000))

        lo, hi = (dt.datetime.fromtimestamp(t / 1e9, dt.timezone.utc).date() for t in self.next_span)
        days = {lo + dt.timedelta(days=d) for d in range((hi - lo).days + 1)}
        names = [points_index(self.prefix, self.source, day) for day in sorted(days)]
        try:
            uuids = self._uuids(names)
            self.recorder.save(self.path, {n: uuids[n] for n in names if n in uuids})
        except Exception as exc:  # the memory only saves work; a run never fails for it
            log.warning("overlap memory %s not saved: %s", self.path, exc)


def _quarantine_rows(quarantine, batch: pa.RecordBatch, rows: list[int], reasons: dict[int, str], stage: str) -> None:
    for row, record in zip(rows, quality.records(batch, rows)):
        ref = f"{record.get('source')} item {record.get('itemid')} @ {record.get('clock')}.{record.get('ns')}"
        quarantine.add(record, reasons[row], ref=ref, stage=stage)


# --- gaps and backfill ---------------------------------------------------------------------------

@dataclass
class Bucket:
    """One bucket of `gaps`: the source's points against the store (Elasticsearch ∪ lake, by point
    id). `quarantined` are source points this store quarantined (and does not hold): they are
    accounted for, not missing. `duplicates` are repeated (itemid, clock, ns) rows at the source,
    already taken out of `source_count`."""

    start: dt.datetime
    end: dt.datetime
    source_count: int
    es_count: int
    lake_count: int = 0
    store_count: int | None = None          # the union; None: Elasticsearch only (no lake points)
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def stored(self) -> int:
        return self.es_count if self.store_count is None else self.store_count

    @property
    def missing(self) -> int:
        return max(self.source_count - self.quarantined - self.stored, 0)

    @property
    def status(self) -> str:
        if self.missing:
            return "missing" if self.stored == 0 else "short"
        if self.stored > self.source_count:
            return "extra"
        if self.quarantined and self.stored < self.source_count:
            return "quarantined"
        return "ok"

    @property
    def reasons_text(self) -> str:
        return "; ".join(f"{r} x{n}" for r, n in sorted(self.quarantine_reasons.items()))


@dataclass
class GapReport:
    source: str
    window: Window
    bucket: dt.timedelta
    buckets: list[Bucket]
    hosts: list[str] | None = None

    @property
    def gaps(self) -> list[Bucket]:
        """Buckets the store holds fewer points of than the source has, after what was quarantined
        (missing or short)."""
        return [b for b in self.buckets if b.missing > 0]

    @property
    def quarantined(self) -> list[Bucket]:
        return [b for b in self.buckets if b.quarantined]


LOAD_STAGES = ("load",)


def _source_ids(point_source, window: Window) -> pa.Table | None:
    """Every row the source has in `window` as (itemid, clock, ns, resolution), duplicates kept,
    rows it cannot convert included; None for a source whose extraction is not side-effect free
    (KCMM CSV marks files as read)."""
    from etl import store

    if getattr(point_source, "mode", None) == "csv" or not hasattr(point_source, "extract"):
        return None

    class _Sink:
        def __init__(self):
            self.rows: list[tuple] = []

        def add(self, record, reason, ref="", stage="", key=None):
            if isinstance(record, dict) and all(record.get(k) is not None for k in ("itemid", "clock", "ns")):
                self.rows.append((int(record["itemid"]), int(record["clock"]), int(record["ns"]),
                                  record.get("resolution") or "raw"))

    sink = _Sink()
    parts = [store.empty_ids()]
    for batch in point_source.extract(window, "gaps", sink):
        table = pa.Table.from_batches([batch]).select(store.ID_COLUMNS)
        parts.append(pa.table({f.name: table[f.name].cast(f.type) for f in parts[0].schema}))
    if sink.rows:
        itemid, clock, ns, resolution = zip(*sink.rows)
        parts.append(pa.table({"itemid": pa.array(itemid, pa.int64()), "clock": pa.array(clock, pa.int64()),
                               "ns": pa.array(ns, pa.int64()), "resolution": pa.array(resolution, pa.string())}))
    return pa.concat_tables(parts)


@reports("gaps")
def gaps(settings: Settings, source, window: Window, bucket: dt.timedelta = dt.timedelta(hours=1),
         mode: str | None = None, client=None, hosts: list[str] | None = None, *, storage=None,
         quarantine: bool = True, refine: bool = True) -> GapReport:
    """Per-bucket counts, the source against the store: Elasticsearch ∪ the published lake day (by
    point id, so a compacted day is present), minus what this store quarantined for the same points
    (shown per bucket with its reasons), duplicate source rows counted once. `hosts` (or the hosts
    of a source object) narrows both sides. refine: for buckets that look short but hold points,
    re-read the source's point ids to take out duplicate rows (costs one extraction of the bucket)."""
    from etl import quarantine as quarantine_files
    from etl import store
    from etl.search.client import es_client

    client = client or es_client(settings)
    with _opened(settings, source, mode, hosts) as point_source:
        name = point_source.name
        if not hosts and getattr(point_source, "hosts", None):
            hosts = sorted(point_source.hosts)
        source_counts = point_source.count(window, bucket)
        # points a run loaded without a refresh (the scheduled task) are counted too
        client.indices.refresh(index=f"{settings.es_index_prefix}-points-{name}-*", ignore_unavailable=True,
                               allow_no_indices=True)
        held = store.counts(settings, name, window, bucket, client=client, storage=storage, hosts=hosts,
                            needed=source_counts)
        step = int(bucket.total_seconds())
        q_by_bucket: dict[dt.datetime, Counter] = {}
        if quarantine:
            points = quarantine_files.quarantined_points(settings, name, window, hosts)
            # A quarantined point the store now holds (replayed after a fix, or re-ingested) is no
            # longer "quarantined": it is counted as stored.
            loaded = store.present(settings, name, list(points), client=client, storage=storage)
            for point, reasons in points.items():
                if point in loaded:
                    continue
                start = dt.datetime.fromtimestamp(point[1] - point[1] % step, tz=dt.timezone.utc)
                counter = q_by_bucket.setdefault(start, Counter())
                # Bad data (extract/validate) is accounted for; a point Elasticsearch refused at
                # load is still missing (backfill tries it again) and is only named.
                if any(stage not in LOAD_STAGES for stage, _ in reasons):
                    counter["_points"] += 1
                for stage, reason in reasons:
                    counter[f"{reason} (at load, still missing)" if stage in LOAD_STAGES else reason] += 1
        starts = sorted(set(source_counts) | set(held.es) | set(held.lake) | set(q_by_bucket))
        buckets = []
        for s in starts:
            q = q_by_bucket.get(s, Counter())
            b = Bucket(s, s + bucket, int(source_counts.get(s, 0)), int(held.es.get(s, 0)),
                       lake_count=int(held.lake.get(s, 0)),
                       store_count=int(held.union.get(s, 0)) if held.lake else None,
                       quarantined=q.get("_points", 0),
                       quarantine_reasons={r: n for r, n in q.items() if r != "_points"})
            if refine and b.missing and (b.stored or b.quarantined):
                ids = _source_ids(point_source, Window(max(b.start, window.start), min(b.end, window.end)))
                if ids is not None and ids.num_rows:
                    b.duplicates = ids.num_rows - store.distinct(ids).num_rows
                    b.source_count -= b.duplicates
            buckets.append(b)
    return GapReport(name, window, bucket, buckets, hosts=list(hosts) if hosts else None)


def _merge(buckets: list[Bucket], window: Window) -> list[Window]:
    """Adjacent gap buckets as one window each, clipped to the window asked for."""
    windows: list[Window] = []
    for b in sorted(buckets, key=lambda b: b.start):
        start, end = max(b.start, window.start), min(b.end, window.end)
        if windows and windows[-1].end == start:
            windows[-1] = Window(windows[-1].start, end)
        else:
            windows.append(Window(start, end))
    return windows


class BackfillResult(tuple):
    """(report, summaries) as before, plus what `gaps` said after the runs: `still_short` lists
    each bucket that is still short with why; `ok` is False while any is."""

    def __new__(cls, report: GapReport, summaries: list[Summary], after: GapReport | None = None,
                still_short: list[tuple[Bucket, str]] | None = None):
        obj = super().__new__(cls, (report, summaries))
        obj.after = after
        obj.still_short = still_short or []
        return obj

    @property
    def report(self) -> GapReport:
        return self[0]

    @property
    def summaries(self) -> list[Summary]:
        return self[1]

    @property
    def ok(self) -> bool:
        return not self.still_short and all(s.ok for s in self.summaries)


def _why_short(b: Bucket, before: Bucket | None, point_source, window: Window, summaries: list[Summary]) -> str:
    """The likeliest reason a bucket is still short after its backfill, from what can be measured."""
    from etl import store

    if before is not None and b.source_count > before.source_count:
        return (f"the source gained {b.source_count - before.source_count} point(s) while backfill ran "
                f"(late values): run backfill again")
    span = Window(max(b.start, window.start), min(b.end, window.end))
    ids = _source_ids(point_source, span)
    expected = b.source_count - b.quarantined
    if ids is not None and store.distinct(ids).num_rows < expected:
        return (f"the source counts {expected} point(s) here but its extraction returns "
                f"{store.distinct(ids).num_rows}: rows monetl does not read (e.g. history kept under an item's "
                f"earlier value type, or items outside the catalog)")
    failures = sum(s.load_failures for s in summaries)
    if failures:
        files = sorted({s.quarantine_path for s in summaries if s.load_failures and s.quarantine_path})
        refused = Counter()
        for s in summaries:
            if s.load_failures:
                refused.update(s.reasons)
        return (f"{failures} point(s) failed to load into Elasticsearch ("
                + "; ".join(f"{r} x{n}" for r, n in refused.most_common(3))
                + f"); records in {', '.join(files) or 'the quarantine'}")
    return (f"the backfill read the bucket's points but the store holds {b.stored} of {expected}: writes did not "
            f"stay (index blocked or deleted during the run?); run backfill again")


def backfill(settings: Settings, source, window: Window, bucket: dt.timedelta = dt.timedelta(hours=1),
             mode: str | None = None, progress: str = "none", client=None,
             hosts: list[str] | None = None, *, storage=None) -> BackfillResult:
    """Ingest exactly the buckets where the store (Elasticsearch ∪ lake) is short of the source (no
    overlap: the bucket is the window), then count again: a bucket still short is named with why.
    A backfill into a compacted day writes to Elasticsearch (the next compaction of that day merges
    it into the lake)."""
    from etl.search.client import es_client

    client = client or es_client(settings)
    with _opened(settings, source, mode, hosts) as point_source:
        report = gaps(settings, point_source, window, bucket, client=client, hosts=hosts, storage=storage)
        windows = _merge(report.gaps, window)
        summaries = [run(settings, point_source, w, overlap=dt.timedelta(0), progress=progress, client=client)
                     for w in windows]
        if not windows:
            return BackfillResult(report, summaries, report, [])
        after = gaps(settings, point_source, window, bucket, client=client, hosts=hosts, storage=storage)
        before = {b.start: b for b in report.buckets}
        still = [(b, _why_short(b, before.get(b.start), point_source, window, summaries)) for b in after.gaps]
    for b, why in still:
        log.warning("%s %s still short after backfill: %d of %d point(s) missing: %s", report.source,
                    f"{b.start:%Y-%m-%dT%H:%M:%SZ}", b.missing, b.source_count, why)
    return BackfillResult(report, summaries, after, still)


# --- replay ---------------------------------------------------------------------------------------

@dataclass
class ReplayReport:
    path: str
    entries: int = 0
    loaded: int = 0
    still_bad: int = 0
    skipped: int = 0           # entries of other areas (not points)
    already_replayed: int = 0  # loaded by an earlier replay (same record): not loaded again
    quarantine_path: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)   # torn or unreadable lines, skipped

    @property
    def ok(self) -> bool:
        return self.still_bad == 0

    def line(self) -> str:
        text = f"replay {self.path}: {self.entries} entries, loaded {self.loaded}, still bad {self.still_bad}"
        if self.already_replayed:
            text += f", {self.already_replayed} already replayed earlier (not loaded again)"
        if self.skipped:
            text += f", skipped {self.skipped} (not point records)"
        if self.problems:
            text += f", {len(self.problems)} unreadable line(s) skipped"
        if self.quarantine_path:
            text += f"; still-bad records in {self.quarantine_path}"
        return text


def _to_batch(records: list[dict], run_id: str) -> tuple[pa.RecordBatch | None, list[tuple[dict, str]]]:
    from etl.schema import point_schema

    schema = point_schema()
    rows, unusable = [], []
    for record in records:
        if not isinstance(record, dict):
            unusable.append((record, "not a point record: not an object"))
            continue
        missing = [f.name for f in schema if not f.nullable and f.name != "run_id" and record.get(f.name) is None]
        if missing:
            unusable.append((record, f"not a point record: missing {', '.join(missing)}"))
            continue
        row = {f.name: record.get(f.name) for f in schema}
        row["run_id"] = run_id
        try:
            pa.RecordBatch.from_pylist([row], schema=schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            unusable.append((record, f"not a point record: {exc}"))
            continue
        rows.append(row)
    return (pa.RecordBatch.from_pylist(rows, schema=schema) if rows else None), unusable


def replay(settings: Settings, path: str | Path, client=None, batch_size: int = 5000) -> ReplayReport:
    """Re-ingest quarantined points (a file or a folder of them) after a fix: each is validated again;
    the ones that pass load, the still-bad ones go to a quarantine file of this replay with their
    new reason. What loaded is recorded (quarantine ledger), so a second replay of the same records
    loads nothing again and says so; an edited record (a new fix) is a new record and loads."""
    from etl import quarantine as quarantine_files
    from etl.search import load
    from etl.search.client import es_client
    from etl.search.templates import apply_points_template

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"nothing to replay: {path} does not exist")
    report = ReplayReport(path=str(path))
    # Deterministic: replaying the same file again rewrites the same still-bad file, one line per record.
    run_id = f"replay:{path.stem}"
    client = client or es_client(settings)
    apply_points_template(client, settings)
    touched: set[str] = set()
    still_bad = Quarantine(settings, QUARANTINE_AREA, run_id)
    done = quarantine_files.replayed(settings, QUARANTINE_AREA)
    seen: set[tuple[str, str]] = set()

    def flush(pending: list[tuple[dict, tuple[str, str]]]) -> None:
        batch, unusable = _to_batch([record for record, _ in pending], run_id)
        for record, reason in unusable:
            still_bad.add(record, reason, stage="replay")
        if batch is None:
            return
        checked = quality.check(batch, None)
        _quarantine_rows(still_bad, batch, checked.bad_rows, checked.reasons, "validate")
        docs = load.documents(checked.good, settings.es_index_prefix)
        result = load.bulk(client, docs, in_flight=settings.es_bulk_in_flight)
        touched.update(docs.index_set())
        _quarantine_rows(still_bad, checked.good, sorted(result.failed), result.failed, "load")
        report.loaded += result.loaded
        # Only what Elasticsearch acknowledged goes into the ledger.
        by_point: dict[str, list[tuple[str, str]]] = {}
        for record, marker in pending:
            by_point.setdefault(quarantine_files.point_key(record) or "", []).append(marker)
        acknowledged = []
        for row, record in enumerate(quality.records(checked.good, list(range(checked.good.num_rows)))):
            if row not in result.failed:
                acknowledged += by_point.get(quarantine_files.point_key(record) or "", [])
        quarantine_files.mark_replayed(settings, QUARANTINE_AREA, acknowledged, run_id)

    try:
        pending: list[tuple[dict, tuple[str, str]]] = []
        for entry in quarantine_files.read(path, report.problems):
            if entry.get("area") != QUARANTINE_AREA:
                report.skipped += 1
                continue
            report.entries += 1
            record = entry.get("record")
            marker = (entry["key"], quarantine_files.record_hash(record))
            if marker in done or marker in seen:
                report.already_replayed += 1
                continue
            seen.add(marker)
            pending.append((record, marker))
            if len(pending) >= batch_size:
                flush(pending)
                pending = []
        if pending:
            flush(pending)
    finally:
        still_bad.close()
    if touched:
        client.indices.refresh(index=",".join(sorted(touched)), ignore_unavailable=True)
    report.still_bad = still_bad.count
    report.reasons = dict(still_bad.reasons)
    report.quarantine_path = str(still_bad.path) if still_bad.count else None
    return report


# --- demo -----------------------------------------------------------------------------------------

def run_demo(settings: Settings) -> list[str]:
    """Ingest the seeded fleet from the start of yesterday (UTC): Zabbix DB mode (the bulk path) up to
    the last hour, API mode for the last hour, KCMM from its database for the whole span and from its
    CSV inbox for the last hour, when those sources are available. Yesterday is taken whole so that
    the lake stage compacts a complete day (a partial one would show as missing data in the
    reports). Idempotent (ids): a second demo overwrites the same documents. (The DAGs then keep it
    current every 5 minutes; `monetl backfill` fills older days.)"""
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    now -= dt.timedelta(minutes=now.minute % 5)
    last_hour = Window(now - dt.timedelta(hours=1), now)
    yesterday = dt.datetime.combine(now.date() - dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    day = Window(yesterday, last_hour.start)
    lines = []
    progress = "rich" if sys.stderr.isatty() else "none"  # the lines below are the step's lines
    from etl.seed.fleet import demo_hosts

    # The demo fleet only: a shared Zabbix may hold many more hosts (tests, benchmarks).
    fleet = demo_hosts()
    for source, mode, window in (("zabbix", "db", day), ("zabbix", "api", last_hour),
                                 ("kcmm", "db", Window(day.start, now)), ("kcmm", "csv", last_hour)):
        try:
            if (source, mode) == ("zabbix", "db"):
                # The bulk part as `monetl backfill`: only hours Elasticsearch is short of, so a
                # second demo re-reads just what is new instead of 1.5 days again.
                report, summaries = backfill(settings, source, window, mode=mode, progress=progress, hosts=fleet)
                complete = len(report.buckets) - len(report.gaps)
                lines.append(f"{source}/{mode}: {complete} of {len(report.buckets)} hourly buckets of {window} "
                             f"already complete in Elasticsearch; {len(report.gaps)} ingested")
                lines += [f"  {s.line()}" for s in summaries]
                continue
            summary = run(settings, source, window, mode=mode, overlap=dt.timedelta(0), progress=progress,
                          hosts=fleet if source == "zabbix" else None)
        except (MonetlError, ImportError) as exc:
            lines.append(f"{source}/{mode}: not ingested: {exc}")
            continue
        lines.append(summary.line())
        if summary.reasons:
            lines.append("  quarantined: " + "; ".join(f"{k} x{v}" for k, v in summary.reasons.items()))
    lines.append(f"indices {settings.es_index_prefix}-points-<source>-YYYY.MM.DD at {settings.es_url}; "
                 f"check with `monetl gaps zabbix --start {day.start:%Y-%m-%dT%H:%MZ} --end {now:%Y-%m-%dT%H:%MZ}`")
    return lines
