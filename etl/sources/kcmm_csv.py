"""KCMM CSV exports dropped into `settings.kcmm_csv_dir` (format: schemas/kcmm/README.md).

When a file is read: only `*.csv` (so `.tmp`/`.part` files being written are invisible), and only
once complete: a `<file>.done` marker exists, or its mtime is at least `settle_seconds` old (KCMM is
closed, so we cannot make it rename; a file it is still appending to keeps a fresh mtime).

Never twice: a state file (JSON, keyed by name + size + sha256) records what each file already
gave. A run for window W emits the file's rows with clock < W.end not emitted before (late rows of
an earlier hour included: a file that arrives late must not lose them; point ids are deterministic
so this is idempotent), and remembers W.end (for every host, or per host in a `--host` run, which
leaves other machines' rows unread); rows at or after W.end wait for the next window. A file whose
rows are all given is done and never read again. Two-phase commit: the state is saved by commit(),
which the ingest run calls only after Elasticsearch acknowledged every bulk request of the run; a
run killed or failed before that reads the same rows again. A lock held from extract() to
commit() stops two runs taking the same rows.

Unparsable rows (text in a number column, bad timestamp, invalid UTF-8, missing value) go to the
quarantine with `file:line` and the reason, on the file's first reading only; the rest of the file
is taken. A file without a required column is quarantined whole (one record) and marked done."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from etl.config import Settings
from etl.locks import exclusive
from etl.schema import NUMERIC_TYPES
from etl.sources.base import MAX_BATCH_ROWS, RAW, ItemCatalog, ItemMeta, bucket_starts, build_points, rebatch
from etl.sources.kcmm_mapping import KcmmMapping, local_to_utc

log = logging.getLogger(__name__)
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


@dataclass
class ParsedCsv:
    """Columns of the good rows of one file, the items they belong to, and the bad rows."""

    items: dict[int, ItemMeta] = field(default_factory=dict)
    itemid: list[int] = field(default_factory=list)
    clock: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    ns: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    value: list = field(default_factory=list)
    value_text: list = field(default_factory=list)
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw text)
    fatal: str | None = None  # the whole file is unusable (e.g. a required column is missing)

    def __len__(self) -> int:
        return len(self.itemid)


def _parse_time(text: str, fmt: str) -> dt.datetime:
    text = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)  # C-fast; covers the documented format
    except ValueError:
        return dt.datetime.strptime(text, fmt)  # an installation's own format (mapping time_format)
    else:
        if parsed.tzinfo is not None:
            raise ValueError("has a UTC offset; KCMM writes local wall-clock time")
        return parsed


def parse_csv(data: bytes, name: str, mapping: KcmmMapping) -> ParsedCsv:
    """Pure: the bytes of one export -> good rows as columns + (line, reason) of every bad row."""
    spec = mapping.csv
    cols = spec["columns"]
    out = ParsedCsv()
    # surrogateescape keeps undecodable bytes visible per line instead of failing the whole file;
    # only a file that does not decode cleanly pays for the per-row check.
    encoding = spec.get("encoding", "utf-8-sig")
    try:
        text, undecodable = data.decode(encoding), None
    except UnicodeDecodeError:
        text, undecodable = data.decode(encoding, errors="surrogateescape"), _ESCAPED
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.get("delimiter", ","))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        out.fatal = "empty file (no header)"
        return out
    position = {logical: header.index(physical) for logical, physical in cols.items() if physical in header}
    missing = [cols[c] for c in spec.get("required", []) if c not in position]
    if missing:
        out.fatal = f"missing column(s) {', '.join(missing)}; header is {','.join(header)!r}"
        return out
    ok_status = mapping.ok_status
    local_times: list[dt.datetime] = []
    item_cache: dict[tuple, ItemMeta] = {}
    fmt = spec.get("time_format", "%Y-%m-%d %H:%M:%S.%f")

    def get(row: list[str], logical: str) -> str | None:
        i = position.get(logical)
        return row[i].strip() if i is not None and i < len(row) else None

    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        raw_line = ",".join(row)
        if undecodable is not None and undecodable.search(raw_line):
            out.bad.append((line, "invalid UTF-8 in the row", raw_line.encode("utf-8", "surrogateescape")
                            .decode("utf-8", "replace")))
            continue
        if len(row) < len(header):
            out.bad.append((line, f"truncated row: {len(row)} of {len(header)} columns", raw_line))
            continue
        machine, counter = get(row, "machine"), get(row, "counter")
        if not machine or not counter:
            out.bad.append((line, "machine or counter name is empty", raw_line))
            continue
        try:
            local = _parse_time(get(row, "time") or "", fmt)
        except ValueError as exc:
            out.bad.append((line, f"bad timestamp {get(row, 'time')!r}: {exc}", raw_line))
            continue
        status_text = get(row, "status")
        try:
            status = int(status_text) if status_text else 0
        except ValueError:
            out.bad.append((line, f"bad status {status_text!r}", raw_line))
            continue
        key = (machine, counter, get(row, "display_name"), get(row, "unit"), get(row, "branch"), get(row, "desk"),
               get(row, "category"))
        meta = item_cache.get(key)
        if meta is None:
            meta = mapping.item(machine, counter, key[2], key[3],
                                {"branch": key[4], "desk": key[5], "category": key[6]})
            item_cache[key] = meta
        raw_value = get(row, "value") or ""
        if raw_value == "":
            out.bad.append((line, f"no value (collector status {status})", raw_line))
            continue
        number, text_value = None, None
        if meta.value_type in NUMERIC_TYPES:
            try:
                number = float(raw_value)
            except ValueError:
                out.bad.append((line, f"not a number: {raw_value!r} for counter {counter}", raw_line))
                continue
            if number != number or number in (float("inf"), float("-inf")):
                out.bad.append((line, f"not a finite number: {raw_value!r}", raw_line))
                continue
        else:
            text_value = raw_value
        if status not in ok_status:
            log.debug("%s:%d: value with collector status %d kept", name, line, status)
        out.items[meta.itemid] = meta
        out.itemid.append(meta.itemid)
        local_times.append(local)
        out.value.append(number)
        out.value_text.append(text_value)
    out.clock, out.ns = local_to_utc(pa.array(local_times, type=pa.timestamp("us")), mapping.timezone)
    return out


# --- the inbox: which files, and what each already gave ---------------------------------------------

def file_key(path: Path, data: bytes) -> str:
    return f"{path.name}|{len(data)}|{hashlib.sha256(data).hexdigest()}"


class CsvInbox:
    """Complete files in the folder and the state of each (what it already gave)."""

    def __init__(self, directory: Path, state_path: Path, settle_seconds: float, now=time.time):
        self.directory = Path(directory)
        self.state_path = Path(state_path)
        self.settle_seconds = settle_seconds
        self._now = now

    def complete_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.csv")):
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved away between listing and stat
                continue
            marker = path.with_name(path.name + ".done")
            if marker.exists() or self._now() - stat.st_mtime >= self.settle_seconds:
                out.append(path)
            else:
                log.info("%s: still being written (mtime %.0fs ago); next run", path, self._now() - stat.st_mtime)
        return out

    def load_state(self) -> dict:
        if not self.state_path.exists():
            return {"files": {}}
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def save_state(self, state: dict) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def locked(self):
        return exclusive(str(self.state_path) + ".lock")


class KcmmCsvSource:
    name = "kcmm"
    mode = "csv"

    def __init__(self, settings: Settings, csv_dir: str | Path | None = None, state_path: str | Path | None = None,
                 mapping: KcmmMapping | str | Path | None = None, timezone: str | None = None,
                 settle_seconds: float | None = None, max_batch_rows: int = MAX_BATCH_ROWS,
                 hosts: list[str] | None = None, now=time.time, **_ignored):
        self.settings = settings
        self.mapping = mapping if isinstance(mapping, KcmmMapping) else KcmmMapping.load(mapping, timezone)
        self.directory = Path(csv_dir or settings.kcmm_csv_dir)
        digest = hashlib.sha1(str(self.directory.resolve()).encode()).hexdigest()[:10]
        self.state_path = Path(state_path) if state_path else settings.home / "state" / f"kcmm-csv-{digest}.json"
        settle = self.mapping.csv.get("settle_seconds", 60) if settle_seconds is None else settle_seconds
        self.inbox = CsvInbox(self.directory, self.state_path, settle, now)
        self.max_batch_rows = max_batch_rows
        self.hosts = set(hosts) if hosts else None
        self.stats = {"files_read": 0, "files_done": 0, "rows": 0, "bad_rows": 0}
        self._pending: dict | None = None  # state of the last extract(), saved by commit()
        self._lock: contextlib.ExitStack | None = None

    def close(self) -> None:
        self.abandon()

    def __enter__(self) -> "KcmmCsvSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _batch(self, parsed: ParsedCsv, keep: np.ndarray, run_id: str) -> pa.RecordBatch:
        idx = np.flatnonzero(keep)
        catalog = ItemCatalog("kcmm", parsed.items.values())
        itemid = np.asarray(parsed.itemid, dtype=np.int64)[idx]
        return build_points(catalog, itemid=itemid, clock=parsed.clock[idx], ns=parsed.ns[idx], run_id=run_id,
                            value=pa.array(parsed.value, pa.float64()).take(pa.array(idx)),
                            value_text=pa.array(parsed.value_text, pa.string()).take(pa.array(idx)),
                            resolution=RAW)

    def _host_mask(self, parsed: ParsedCsv) -> np.ndarray:
        if self.hosts is None:
            return np.ones(len(parsed), dtype=bool)
        allowed = {i for i, m in parsed.items.items() if m.host in self.hosts}
        return np.isin(np.asarray(parsed.itemid, dtype=np.int64), np.fromiter(allowed, dtype=np.int64))

    def _item_watermarks(self, parsed: ParsedCsv, entry: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the point in time (ns) before which its host's rows were already loaded (-1: none).
        A run over every host advances `emitted_before_ns`; a `--host` run advances only its hosts'
        entries in `host_emitted_before_ns`, so other machines' rows stay unread."""
        base = entry.get("emitted_before_ns")
        base = -1 if base is None else int(base)
        by_host = entry.get("host_emitted_before_ns") or {}
        uniq, inverse = np.unique(np.asarray(parsed.itemid, dtype=np.int64), return_inverse=True)
        hosts = [parsed.items[int(i)].host for i in uniq]
        marks = np.array([max(base, int(by_host.get(h, -1))) for h in hosts], dtype=np.int64)
        return marks[inverse], np.array(hosts, dtype=object)[inverse]

    def _advance(self, parsed: ParsedCsv, entry: dict, end_ns: int) -> None:
        """The file's state once this run's rows are loaded: rows before `end_ns` given, for every
        host or only this run's hosts."""
        base = entry.get("emitted_before_ns")
        by_host = dict(entry.get("host_emitted_before_ns") or {})
        if self.hosts is None:
            base = max(base or end_ns, end_ns)
            by_host = {h: ns for h, ns in by_host.items() if ns > base}
        else:
            present = {m.host for m in parsed.items.values()} & self.hosts
            for host in present:
                by_host[host] = max(int(by_host.get(host, -1)), base or -1, end_ns)
        entry["emitted_before_ns"] = base
        if by_host:
            entry["host_emitted_before_ns"] = by_host
        else:
            entry.pop("host_emitted_before_ns", None)

    def extract(self, window, run_id: str, quarantine) -> Iterator[pa.RecordBatch]:
        """Phase one of a two-phase commit: the rows due in `window`, and the state that records them
        as given, kept pending. The caller calls `commit()` once Elasticsearch acknowledged every bulk
        request holding them; a run that fails or is killed before that leaves the files to be read
        again (point ids make the re-read idempotent). The inbox lock is held from here to
        commit()/abandon(), so two runs never take the same rows."""
        end_s = window.end_ns  # compare in ns so windows that end mid-second stay exact

        def batches():
            self._hold_lock()
            state = self.inbox.load_state()
            files = state.setdefault("files", {})
            for path in self.inbox.complete_files():
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                key = file_key(path, data)
                entry = files.get(key)
                if entry and entry.get("done"):
                    continue
                first_read = entry is None
                entry = entry or {"name": path.name, "size": len(data), "first_read": dt.datetime.now(
                    dt.timezone.utc).isoformat(timespec="seconds"), "emitted_before_ns": None, "done": False}
                parsed = parse_csv(data, path.name, self.mapping)
                self.stats["files_read"] += 1
                if first_read:
                    self._quarantine_bad(path, parsed, quarantine)
                if parsed.fatal:
                    entry["done"] = True
                    files[key] = entry
                    continue
                t_ns = parsed.clock * 1_000_000_000 + parsed.ns
                keep = t_ns < end_s
                if len(parsed):
                    marks, _ = self._item_watermarks(parsed, entry)
                    keep &= (t_ns >= marks) & self._host_mask(parsed)
                if keep.any():
                    self.stats["rows"] += int(keep.sum())
                    yield self._batch(parsed, keep, run_id)
                self._advance(parsed, entry, end_s)
                entry["rows"] = len(parsed)
                entry["bad_rows"] = len(parsed.bad)
                if len(parsed) == 0 or bool((t_ns < self._item_watermarks(parsed, entry)[0]).all()):
                    entry["done"] = True
                    self.stats["files_done"] += 1
                files[key] = entry
            # Reached only when the consumer took every batch; saved by commit() after the load.
            self._pending = state

        yield from rebatch(batches(), self.max_batch_rows)

    def _hold_lock(self) -> None:
        if self._lock is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self.inbox.locked())
            self._lock = stack

    def commit(self) -> None:
        """Phase two: every row the last extract() gave is in Elasticsearch; record the files as read."""
        try:
            if self._pending is not None:
                self.inbox.save_state(self._pending)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Forget what the last extract() would have recorded (its rows are read again next time)."""
        self._pending = None
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    def _quarantine_bad(self, path: Path, parsed: ParsedCsv, quarantine) -> None:
        if parsed.fatal:
            quarantine.add({"file": str(path)}, f"unreadable KCMM export: {parsed.fatal}", ref=str(path),
                           stage="extract")
        for line, reason, raw in parsed.bad:
            quarantine.add({"file": str(path), "line": line, "raw": raw}, reason, ref=f"{path}:{line}",
                           stage="extract")
        self.stats["bad_rows"] += len(parsed.bad)

    def count(self, window, bucket: dt.timedelta) -> dict[dt.datetime, int]:
        """Points per bucket in every complete export in the folder (read or not); a sample exported
        twice (same machine, counter and time, in one file or two) is one point, as in the store."""
        starts = bucket_starts(window, bucket)
        counts = {s: 0 for s in starts}
        step = int(bucket.total_seconds())
        seen: set[tuple[int, int, int]] = set()
        for path in self.inbox.complete_files():
            parsed = parse_csv(path.read_bytes(), path.name, self.mapping)
            mask = self._host_mask(parsed)
            for itemid, clock, ns in zip(np.asarray(parsed.itemid, dtype=np.int64)[mask].tolist(), parsed.clock[mask].tolist(),
                                         parsed.ns[mask].tolist()):
                if window.contains_ns(clock * 1_000_000_000 + ns) and (itemid, clock, ns) not in seen:
                    seen.add((itemid, clock, ns))
                    b = dt.datetime.fromtimestamp(clock - clock % step, tz=dt.timezone.utc)
                    counts[b] = counts.get(b, 0) + 1
        return counts
