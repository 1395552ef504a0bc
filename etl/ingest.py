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
deleted documents. The window's own points (and backfill, replay) use `index`, so a re-run after a
fix still overwrites changed values."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from etl import quality
from etl.config import Settings
from etl.errors import ConfigError, MonetlError
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
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    indices: list[str] = field(default_factory=list)
    ge_rows_checked: int = 0                                    # rows GE validated (a sample)
    ge_failed: dict[str, int] = field(default_factory=dict)     # GE's failed expectations on them
    ge_seconds: float = 0.0
    seconds: float = 0.0

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
    thread: one lock around the file."""

    def __init__(self, inner: Quarantine):
        self.inner = inner
        self.lock = threading.Lock()

    def add(self, record, reason: str, ref: str = "", stage: str = "") -> None:
        with self.lock:
            self.inner.add(record, reason, ref, stage)

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
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self.mode == "plain":
            print(f"{self.title}: done, read {self.read:,} loaded {self.loaded:,} quarantined "
                  f"{self.quarantined:,} in {time.monotonic() - self._started:.1f}s", file=sys.stderr, flush=True)


@dataclass
class _Prepared:
    batch: pa.RecordBatch       # the rows that passed validation
    checked: quality.Checked
    raw: pa.RecordBatch         # the batch as read (for quarantined records)
    docs: object                # etl.search.load.Documents


_DONE = object()
# Rows per unit of work (validate, build documents, bulk): source batches are sliced to this, so the
# documents in flight stay a few MB whatever the source's batch size and the window's length.
WORK_ROWS = 10_000


def _prepare_in_background(batches: Iterator[pa.RecordBatch], window: Window, prefix: str,
                           sampler: quality.GESampler | None, depth: int = 1, create_before_ns: int | None = None):
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
                    docs = documents(checked.good, prefix)
                    if create_before_ns is not None:
                        docs.create_before(checked.good, create_before_ns)
                    put(_Prepared(checked.good, checked, raw, docs))
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


def run(settings: Settings, source, window: Window, mode: str | None = None, run_id: str | None = None,
        overlap: dt.timedelta = DEFAULT_OVERLAP, *, progress: str = "none", use_ge: bool = True,
        client=None, on_chunk: Callable[[int], None] | None = None, chunk_docs: int | None = None,
        hosts: list[str] | None = None) -> Summary:
    """Ingest `window` (widened back by `overlap`) of `source` ("zabbix" | "kcmm" or a PointSource)
    into Elasticsearch. Bad points go to the quarantine with their reason; the rest loads.

    progress: "auto" (rich on a terminal, plain lines otherwise), "rich", "plain" or "none".
    on_chunk(n) is called after each acknowledged bulk request with the documents done so far in the
    current batch; chunk_docs overrides the bulk request size (tests use both to stop a run mid-way).
    hosts narrows a source given by name to these technical host names."""
    with _opened(settings, source, mode, hosts) as point_source:
        return _run(settings, point_source, window, run_id, overlap, progress, use_ge, client, on_chunk, chunk_docs)


def _run(settings, point_source, window, run_id, overlap, progress, use_ge, client, on_chunk, chunk_docs) -> Summary:
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
    shared = _SharedQuarantine(quarantine)
    try:
        batches = point_source.extract(extraction, run_id, shared)
        # The overlap only adds what is missing (late values): points already stored are not rewritten.
        create_before = window.start_ns if extraction.start_ns < window.start_ns else None
        for prepared in _prepare_in_background(batches, extraction, settings.es_index_prefix, sampler,
                                               create_before_ns=create_before):
            raw, checked = prepared.raw, prepared.checked
            read += _by_type(raw)
            _quarantine_rows(shared, raw, checked.bad_rows, checked.reasons, "validate")
            bad += _by_type(raw.take(pa.array(checked.bad_rows, type=pa.int64()))) if checked.bad_rows else Counter()
            meter.update(read=raw.num_rows, quarantined=len(checked.bad_rows))
            result = load.bulk(client, prepared.docs, on_chunk=on_chunk, chunk_docs=chunk_docs or load.CHUNK_DOCS)
            touched.update(prepared.docs.indices)
            failed_rows = sorted(result.failed)
            if failed_rows:
                _quarantine_rows(shared, prepared.batch, failed_rows, result.failed, "load")
                bad += _by_type(prepared.batch.take(pa.array(failed_rows, type=pa.int64())))
                summary.load_failures += len(failed_rows)
            loaded += _by_type(prepared.batch) - (_by_type(prepared.batch.take(pa.array(failed_rows, type=pa.int64())))
                                                  if failed_rows else Counter())
            summary.already_stored += result.existing
            meter.update(loaded=result.loaded, quarantined=len(failed_rows))
    finally:
        quarantine.close()
        meter.close()
    if touched:
        # Readers (gaps, tests, the compaction check) see the run's documents now, not after 30 s.
        client.indices.refresh(index=",".join(sorted(touched)), ignore_unavailable=True)
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


def _quarantine_rows(quarantine, batch: pa.RecordBatch, rows: list[int], reasons: dict[int, str], stage: str) -> None:
    for row, record in zip(rows, quality.records(batch, rows)):
        ref = f"{record.get('source')} item {record.get('itemid')} @ {record.get('clock')}.{record.get('ns')}"
        quarantine.add(record, reasons[row], ref=ref, stage=stage)


# --- gaps and backfill ---------------------------------------------------------------------------

@dataclass
class Bucket:
    start: dt.datetime
    end: dt.datetime
    source_count: int
    es_count: int

    @property
    def missing(self) -> int:
        return max(self.source_count - self.es_count, 0)

    @property
    def status(self) -> str:
        if self.source_count == self.es_count:
            return "ok"
        if self.es_count == 0:
            return "missing"
        return "short" if self.es_count < self.source_count else "extra"


@dataclass
class GapReport:
    source: str
    window: Window
    bucket: dt.timedelta
    buckets: list[Bucket]

    @property
    def gaps(self) -> list[Bucket]:
        """Buckets Elasticsearch holds fewer points of than the source (missing or short)."""
        return [b for b in self.buckets if b.es_count < b.source_count]


def gaps(settings: Settings, source, window: Window, bucket: dt.timedelta = dt.timedelta(hours=1),
         mode: str | None = None, client=None, hosts: list[str] | None = None) -> GapReport:
    from etl.search.client import es_client
    from etl.search.scan import bucket_counts

    with _opened(settings, source, mode, hosts) as point_source:
        name = point_source.name
        source_counts = point_source.count(window, bucket)
    es_counts = bucket_counts(client or es_client(settings), settings.es_index_prefix, name, window, bucket)
    step = bucket
    starts = sorted(set(source_counts) | set(es_counts))
    buckets = [Bucket(s, s + step, int(source_counts.get(s, 0)), int(es_counts.get(s, 0))) for s in starts]
    return GapReport(name, window, bucket, buckets)


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


def backfill(settings: Settings, source, window: Window, bucket: dt.timedelta = dt.timedelta(hours=1),
             mode: str | None = None, progress: str = "none", client=None,
             hosts: list[str] | None = None) -> tuple[GapReport, list[Summary]]:
    """Ingest exactly the buckets where Elasticsearch is short of the source (no overlap: the bucket
    is the window)."""
    report = gaps(settings, source, window, bucket, mode=mode, client=client, hosts=hosts)
    summaries = [run(settings, source, w, mode=mode, overlap=dt.timedelta(0), progress=progress, client=client,
                     hosts=hosts)
                 for w in _merge(report.gaps, window)]
    return report, summaries


# --- replay ---------------------------------------------------------------------------------------

@dataclass
class ReplayReport:
    path: str
    entries: int = 0
    loaded: int = 0
    still_bad: int = 0
    skipped: int = 0           # entries of other areas (not points)
    quarantine_path: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.still_bad == 0

    def line(self) -> str:
        text = f"replay {self.path}: {self.entries} entries, loaded {self.loaded}, still bad {self.still_bad}"
        if self.skipped:
            text += f", skipped {self.skipped} (not point records)"
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
    the ones that pass load, the still-bad ones go to a new quarantine file with their new reason."""
    from etl import quarantine as quarantine_files
    from etl.search import load
    from etl.search.client import es_client
    from etl.search.templates import apply_points_template

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"nothing to replay: {path} does not exist")
    report = ReplayReport(path=str(path))
    run_id = f"replay:{path.stem}:{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}"
    client = client or es_client(settings)
    apply_points_template(client, settings)
    touched: set[str] = set()
    still_bad = Quarantine(settings, QUARANTINE_AREA, run_id)

    def flush(records: list[dict]) -> None:
        batch, unusable = _to_batch(records, run_id)
        for record, reason in unusable:
            still_bad.add(record, reason, stage="replay")
        if batch is None:
            return
        checked = quality.check(batch, None)
        _quarantine_rows(still_bad, batch, checked.bad_rows, checked.reasons, "validate")
        docs = load.documents(checked.good, settings.es_index_prefix)
        result = load.bulk(client, docs)
        touched.update(docs.indices)
        _quarantine_rows(still_bad, checked.good, sorted(result.failed), result.failed, "load")
        report.loaded += result.loaded

    try:
        pending: list[dict] = []
        for entry in quarantine_files.read(path):
            if entry.get("area") != QUARANTINE_AREA:
                report.skipped += 1
                continue
            report.entries += 1
            pending.append(entry.get("record"))
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
    for source, mode, window in (("zabbix", "db", day), ("zabbix", "api", last_hour),
                                 ("kcmm", "db", Window(day.start, now)), ("kcmm", "csv", last_hour)):
        try:
            summary = run(settings, source, window, mode=mode, overlap=dt.timedelta(0))
        except (MonetlError, ImportError) as exc:
            lines.append(f"{source}/{mode}: not ingested: {exc}")
            continue
        lines.append(summary.line())
        if summary.reasons:
            lines.append("  quarantined: " + "; ".join(f"{k} x{v}" for k, v in summary.reasons.items()))
    lines.append(f"indices {settings.es_index_prefix}-points-<source>-YYYY.MM.DD at {settings.es_url}; "
                 f"check with `monetl gaps zabbix --start {day.start:%Y-%m-%dT%H:%MZ} --end {now:%Y-%m-%dT%H:%MZ}`")
    return lines
