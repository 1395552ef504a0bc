"""What a scheduled run loaded in the span the next run re-reads as its overlap.

A 5-minute run re-reads the 10 minutes before its window to pick up late values. Without a memory
every re-read point is sent again (as `create`, answered 409): at design scale that is ~1M of the
~1.5M documents a run sends, and the bulk answers for them cost as much as the new points. So a run
that loaded everything records the ids (itemid, clock, ns) of its raw points in
[window end - overlap, window end), and the next run sends only the overlap points not in that set:
the late values. A point is skipped only if a run had it acknowledged by Elasticsearch, so nothing
can be lost by skipping; the memory also records the UUID of each index it wrote into, and is
ignored when one of them was deleted or re-created since (a dropped index, a restore).

Membership is exact: ids are packed into one int64 (dense item number x span + ns into the
span), which holds for any fleet and overlap where items x span_ns < 2**63 (1M items x 2.5 h);
beyond that the memory is simply not used. About 16 bytes a point on disk: ~16 MB at 100,000
items and a 10-minute overlap."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

_LIMIT = 2**63 - 1


def memory_path(home: Path, prefix: str, source: str, scope: object) -> Path:
    """One file per index prefix, source and scope (host/item subset): runs of different host
    groups do not overwrite each other's memory."""
    digest = hashlib.sha256(repr(scope).encode()).hexdigest()[:12]
    return home / "state" / f"overlap-{prefix}-{source}-{digest}.npz"


def _point_ns(batch: pa.RecordBatch) -> np.ndarray:
    clock = batch.column("clock").to_numpy(zero_copy_only=False).astype(np.int64)
    ns = batch.column("ns").to_numpy(zero_copy_only=False).astype(np.int64)
    return clock * 1_000_000_000 + ns


def _raw(batch: pa.RecordBatch) -> np.ndarray:
    return pc.fill_null(pc.equal(batch.column("resolution"), "raw"), False).to_numpy(zero_copy_only=False)


@dataclass
class Known:
    """The ids of [lo_ns, hi_ns) an earlier run loaded, ready for membership tests."""

    lo_ns: int
    hi_ns: int
    items: np.ndarray      # sorted distinct itemids
    keys: np.ndarray       # sorted packed ids

    def __len__(self) -> int:
        return len(self.keys)

    def mask(self, batch: pa.RecordBatch) -> np.ndarray:
        """True for the rows of `batch` an earlier run already loaded."""
        n = batch.num_rows
        if not n or not len(self.keys):
            return np.zeros(n, dtype=bool)
        at = _point_ns(batch)
        itemid = batch.column("itemid").to_numpy(zero_copy_only=False).astype(np.int64)
        where = _raw(batch) & (at >= self.lo_ns) & (at < self.hi_ns)
        pos = np.searchsorted(self.items, itemid)
        np.clip(pos, 0, len(self.items) - 1, out=pos)
        where &= self.items[pos] == itemid
        key = pos.astype(np.int64) * (self.hi_ns - self.lo_ns) + (at - self.lo_ns)
        slot = np.searchsorted(self.keys, key)
        np.clip(slot, 0, len(self.keys) - 1, out=slot)
        return where & (self.keys[slot] == key)


def _pack(itemids: np.ndarray, at: np.ndarray, lo_ns: int, hi_ns: int) -> Known | None:
    inside = (at >= lo_ns) & (at < hi_ns)
    itemids, at = itemids[inside], at[inside]
    items = np.unique(itemids)
    if len(items) and len(items) * (hi_ns - lo_ns) >= _LIMIT:
        return None
    keys = np.searchsorted(items, itemids).astype(np.int64) * (hi_ns - lo_ns) + (at - lo_ns)
    keys.sort()
    return Known(lo_ns, hi_ns, items, keys)


def recall(path: Path, lo_ns: int, hi_ns: int, index_uuids) -> Known | None:
    """The ids of [lo_ns, hi_ns) recorded at `path`, or None (no memory, unreadable, or an index it
    names is gone or was re-created: `index_uuids(names)` returns {name: uuid} of those that exist)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            itemids, at = saved["itemid"], saved["at"]
            indices = [str(x) for x in saved["index"]]
            uuids = [str(x) for x in saved["uuid"]]
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign file: the run just sends its overlap
        log.info("overlap memory %s ignored: %s", path, exc)
        return None
    if indices:
        current = index_uuids(indices)
        if any(current.get(name) != uuid for name, uuid in zip(indices, uuids)):
            log.info("overlap memory %s ignored: an index it names was deleted or re-created", path)
            return None
    return _pack(itemids, at, lo_ns, hi_ns)


class Recorder:
    """Collects the raw points of [lo_ns, hi_ns) a run had acknowledged; `save` writes them
    atomically (a run killed before saving leaves the previous memory, which stays true)."""

    def __init__(self, lo_ns: int, hi_ns: int):
        self.lo_ns, self.hi_ns = lo_ns, hi_ns
        self._itemids: list[np.ndarray] = []
        self._at: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch, failed_rows) -> None:
        if not batch.num_rows:
            return
        at = _point_ns(batch)
        keep = _raw(batch) & (at >= self.lo_ns) & (at < self.hi_ns)
        if failed_rows:
            keep[np.asarray(list(failed_rows), dtype=np.int64)] = False
        if keep.any():
            self._itemids.append(batch.column("itemid").to_numpy(zero_copy_only=False).astype(np.int64)[keep])
            self._at.append(at[keep])

    def save(self, path: Path, index_uuids: dict[str, str]) -> int:
        itemids = np.concatenate(self._itemids) if self._itemids else np.zeros(0, dtype=np.int64)
        at = np.concatenate(self._at) if self._at else np.zeros(0, dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        names = sorted(index_uuids)
        with open(tmp, "wb") as out:
            np.savez(out, itemid=itemids, at=at, index=np.array(names, dtype=str),
                     uuid=np.array([index_uuids[n] for n in names], dtype=str))
        os.replace(tmp, path)
        return len(itemids)
