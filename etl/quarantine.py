"""Quarantine: records that failed parsing, validation or loading, one JSON line each with the
reason, per area and run. Nothing bad is dropped silently; `monetl replay PATH` feeds them back.

Line format (schemas/quarantine.json): {"key", "area", "run_id", "ref", "reason", "stage",
"record"}. `record` is what the replayer of that area needs to try again (a point, a raw log line,
...); `key` is stable for one record and reason (points: source:itemid:clock:ns[:resolution]:
stage:reason), so a file holds one line per key however often its window is re-run.

Files are written whole line by whole line (one write per line on an O_APPEND descriptor); a line
torn by a kill is cut off when the file is next opened and skipped (with a warning) by readers, so
it never glues onto the next record. Files are 0600 in 0700 folders, and raw lines are redacted
(etl.redact) before they are written.

What `replay` loaded is recorded in `<quarantine_dir>/_replayed/<area>.tsv` (key and a hash of
the record), so replaying the same file again loads nothing twice."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from etl.config import Settings
from etl.redact import redact

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")
LEDGER_DIR = "_replayed"


def _json_default(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def point_key(record) -> str | None:
    """source:itemid:clock:ns[:resolution] of a point-like record (the point's _id), else None."""
    if not isinstance(record, dict) or any(record.get(k) is None for k in ("itemid", "clock", "ns")):
        return None
    key = f"{record.get('source') or ''}:{record['itemid']}:{record['clock']}:{record['ns']}"
    resolution = record.get("resolution")
    return f"{key}:{resolution}" if resolution and resolution != "raw" else key


def record_key(record, reason: str, ref: str = "", stage: str = "") -> str:
    """The stable key of one (record, reason): the point id, else the ref (file:line), else a
    hash of the record itself."""
    subject = point_key(record) or ref
    if not subject:
        subject = "sha1=" + hashlib.sha1(_dumps(record).encode("utf-8")).hexdigest()
    return f"{subject}:{stage}:{reason}"


def record_hash(record) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False,
                                     default=_json_default).encode("utf-8")).hexdigest()[:32]


def _redacted(record):
    """Raw lines (logs, CSV) may carry a password: redact the text fields that hold a raw line."""
    if isinstance(record, dict) and isinstance(record.get("raw"), str):
        return {**record, "raw": redact(record["raw"])}
    return record


def private_dir(path: Path) -> Path:
    """Create (or tighten) a folder monetl owns to 0700."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_mode & 0o777 != 0o700:
            os.chmod(path, 0o700)
    except PermissionError:  # not ours (e.g. a shared mount): leave it, say so once
        log.warning("cannot make %s private (0700): not its owner", path)
    return path


def _write_line(fd: int, line: str) -> None:
    data = line.encode("utf-8")
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _open_private(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _split_lines(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines and the length of the file up to the end of the last one."""
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


class Quarantine:
    """Bad records of one area and run, in <quarantine_dir>/<area>/<run_id>.jsonl, one line per key;
    the file exists only if something was quarantined. `count` and `reasons` count every add of this
    run (what the run saw), `written` the lines this run added to the file."""

    def __init__(self, settings: Settings, area: str, run_id: str):
        self.area = area
        self.run_id = run_id
        self.root = Path(settings.quarantine_dir)
        self.path = self.root / _SAFE.sub("_", area) / f"{_SAFE.sub('_', run_id)}.jsonl"
        self.reasons: Counter[str] = Counter()
        self.written = 0
        self._fd: int | None = None
        self._keys: set[str] = set()
        self._lock = threading.Lock()  # a sliced scan or an extraction thread may add concurrently

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def add(self, record, reason: str, ref: str = "", stage: str = "", key: str | None = None) -> None:
        # Reasons are grouped by their first clause so the summary stays short.
        self.reasons[reason.split(":")[0]] += 1
        reason = redact(reason)
        key = key or record_key(record, reason, ref, stage)
        with self._lock:
            if self._fd is None:
                self._open()
            if key in self._keys:
                return
            self._keys.add(key)
            entry = {"key": key, "area": self.area, "run_id": self.run_id, "ref": ref, "reason": reason,
                     "stage": stage, "record": _redacted(record)}
            _write_line(self._fd, _dumps(entry) + "\n")
            self.written += 1

    def _open(self) -> None:
        private_dir(self.root)
        private_dir(self.path.parent)
        with _locked(self.path):
            if self.path.exists():
                self._keys = _tidy(self.path)
            self._fd = _open_private(self.path)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "Quarantine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _locked:
    """An exclusive lock on the area folder while a file is opened and tidied (two runs of one
    window); one lock file per folder, not one per quarantine file."""

    def __init__(self, path: Path):
        self.lock_path = path.parent / ".lock"

    def __enter__(self):
        self.fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _entry_key(entry: dict) -> str:
    return entry.get("key") or record_key(entry.get("record"), entry.get("reason", ""), entry.get("ref", ""),
                                          entry.get("stage", ""))


def _tidy(path: Path) -> set[str]:
    """Keys of an existing file. A torn last line (a kill mid-write) is cut off in place; a file
    with repeated keys (written before keys existed) is rewritten with one line per key."""
    data = path.read_bytes()
    lines, end = _split_lines(data)
    if end < len(data):
        log.warning("%s: cut off a torn last line (%d bytes) left by an interrupted write; the re-run "
                    "quarantines that record again", path, len(data) - end)
        with open(path, "r+b") as fh:
            fh.truncate(end)
    keys: set[str] = set()
    kept: list[bytes] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key = _entry_key(json.loads(line))
        except (ValueError, AttributeError):
            log.warning("%s:%d: not a quarantine entry, kept as it is", path, number)
            kept.append(line)
            continue
        if key in keys:
            continue
        keys.add(key)
        kept.append(line)
    if len(kept) < len([line for line in lines if line.strip()]):
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(line + b"\n" for line in kept))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        log.info("%s: rewritten with one line per record and reason (%d lines)", path, len(kept))
    if path.stat().st_mode & 0o777 != 0o600:
        os.chmod(path, 0o600)
    return keys


def files(path: Path | str) -> list[Path]:
    """One quarantine file, or every *.jsonl under a folder (bookkeeping folders `_*`/`.*` skipped)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*.jsonl")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))


def read(path: Path | str, problems: list[str] | None = None) -> Iterator[dict]:
    """Entries of one quarantine file, or of every *.jsonl under a folder. A torn last line or a
    line that is not JSON is skipped with a warning (and described in `problems` if given)."""
    for file in files(path):
        data = file.read_bytes()
        lines, end = _split_lines(data)
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                _problem(problems, f"{file}:{number}: not a JSON line, skipped")
                continue
            if isinstance(entry, dict):
                entry.setdefault("key", _entry_key(entry))
                yield entry
            else:
                _problem(problems, f"{file}:{number}: not a quarantine entry, skipped")
        if end < len(data):
            _problem(problems, f"{file}:{len(lines) + 1}: torn last line ({len(data) - end} bytes, an interrupted "
                               f"write), skipped")


def _problem(problems: list[str] | None, text: str) -> None:
    log.warning("%s", text)
    if problems is not None:
        problems.append(text)


# --- what replay already loaded ------------------------------------------------------------------

def _ledger_path(settings: Settings, area: str) -> Path:
    return Path(settings.quarantine_dir) / LEDGER_DIR / f"{_SAFE.sub('_', area)}.tsv"


def replayed(settings: Settings, area: str) -> set[tuple[str, str]]:
    """(key, record hash) of every entry a replay loaded."""
    path = _ledger_path(settings, area)
    if not path.exists():
        return set()
    done = set()
    lines, _ = _split_lines(path.read_bytes())  # a torn last line is not a record of a load
    for line in lines:
        parts = line.decode("utf-8", errors="replace").split("\t")
        if len(parts) >= 2:
            done.add((parts[0], parts[1]))
    return done


def mark_replayed(settings: Settings, area: str, done: Iterable[tuple[str, str]], replay_run: str) -> int:
    """Record loaded entries (after Elasticsearch acknowledged them); returns how many."""
    done = list(done)
    if not done:
        return 0
    path = _ledger_path(settings, area)
    private_dir(Path(settings.quarantine_dir))
    private_dir(path.parent)
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    fd = _open_private(path)
    try:
        for key, digest in done:
            _write_line(fd, f"{key.replace(chr(9), ' ').replace(chr(10), ' ')}\t{digest}\t{replay_run}\t{at}\n")
    finally:
        os.close(fd)
    return len(done)


# --- quarantined points, for `gaps` --------------------------------------------------------------

def quarantined_points(settings: Settings, source: str, window, hosts: list[str] | None = None,
                       area: str = "points") -> dict[tuple[int, int, int, str], set[tuple[str, str]]]:
    """Points of `source` with clock in `window` that this store quarantined, by (itemid, clock,
    ns, resolution), with their (stage, reason first clause). A record without a host is left out
    when `hosts` narrows the question (it cannot be attributed)."""
    folder = Path(settings.quarantine_dir) / _SAFE.sub("_", area)
    out: dict[tuple[int, int, int, str], set[tuple[str, str]]] = {}
    if not folder.is_dir():
        return out
    wanted = set(hosts) if hosts else None
    for entry in read(folder):
        record = entry.get("record")
        if entry.get("area") != area or not isinstance(record, dict) or point_key(record) is None:
            continue
        if (record.get("source") or "") != source:
            continue
        if wanted is not None and record.get("host") not in wanted:
            continue
        try:
            itemid, clock, ns = int(record["itemid"]), int(record["clock"]), int(record["ns"])
        except (TypeError, ValueError):
            continue
        if not window.contains_ns(clock * 1_000_000_000 + ns):
            continue
        point = (itemid, clock, ns, record.get("resolution") or "raw")
        out.setdefault(point, set()).add((str(entry.get("stage") or ""), str(entry.get("reason", "")).split(":")[0]))
    return out
