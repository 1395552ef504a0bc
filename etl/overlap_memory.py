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
beyond that the memory is simply not used. About 17 bytes a point on disk: ~17 MB at 100,000
items and a 10-minute overlap.

Each id keeps the value type of the history table it was read from, so the overlap can be settled
by counting (etl.overlap_check): where the source's count of a slice equals what the memory holds
there, the slice has no late value and is not re-read at all. A settled slice's ids are carried
into the next memory (`Recorder.add_ids`), so the next run can settle it too."""

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


def _value_types(batch: pa.RecordBatch) -> np.ndarray:
    """The history table each row came from (-1 where a batch has no such column)."""
    if "value_type" not in batch.schema.names:
        return np.full(batch.num_rows, -1, dtype=np.int8)
    return pc.fill_null(batch.column("value_type"), -1).to_numpy(zero_copy_only=False).astype(np.int8)


def _raw(batch: pa.RecordBatch) -> np.ndarray:
    return pc.fill_null(pc.equal(batch.column("resolution"), "raw"), False).to_numpy(zero_copy_only=False)


@dataclass
class Known:
    """The ids of [lo_ns, hi_ns) an earlier run loaded, ready for membership tests."""

    lo_ns: int
    hi_ns: int
    items: np.ndarray      # sorted distinct itemids
    keys: np.ndarray       # sorted packed ids
    vt: np.ndarray | None = None  # per key: value type of the table it came from (None: an older file)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def span_ns(self) -> int:
        return self.hi_ns - self.lo_ns

    def times_in_tables(self, table_of_item: np.ndarray) -> np.ndarray:
        """Sorted times (ns) of the ids read from the table `table_of_item` gives for their item
        (aligned with `items`; -1 for an item no longer known): what a count of those tables finds."""
        if self.vt is None or not len(self.keys):
            return np.zeros(0, dtype=np.int64)
        pos = self.keys // self.span_ns
        at = self.keys % self.span_ns + self.lo_ns
        keep = self.vt == table_of_item[pos]
        return np.sort(at[keep])

    def ids(self, lo_ns: int, hi_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(itemid, time ns, value type) of the ids in [lo_ns, hi_ns)."""
        at = self.keys % self.span_ns + self.lo_ns
        inside = (at >= lo_ns) & (at < hi_ns)
        vt = self.vt[inside] if self.vt is not None else np.full(int(inside.sum()), -1, dtype=np.int8)
        return self.items[self.keys[inside] // self.span_ns], at[inside], vt

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


def _pack(itemids: np.ndarray, at: np.ndarray, lo_ns: int, hi_ns: int, vt: np.ndarray | None = None) -> Known | None:
    inside = (at >= lo_ns) & (at < hi_ns)
    itemids, at = itemids[inside], at[inside]
    items = np.unique(itemids)
    if len(items) and len(items) * (hi_ns - lo_ns) >= _LIMIT:
        return None
    keys = np.searchsorted(items, itemids).astype(np.int64) * (hi_ns - lo_ns) + (at - lo_ns)
    if vt is None:
        keys.sort()
        return Known(lo_ns, hi_ns, items, keys)
    order = np.argsort(keys, kind="stable")
    return Known(lo_ns, hi_ns, items, keys[order], vt[inside][order])


def recall(path: Path, lo_ns: int, hi_ns: int, index_uuids) -> Known | None:
    """The ids of [lo_ns, hi_ns) recorded at `path`, or None (no memory, unreadable, or an index it
    names is gone or was re-created: `index_uuids(names)` returns {name: uuid} of those that exist)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            itemids, at = saved["itemid"], saved["at"]
            vt = saved["vt"] if "vt" in saved.files else None
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
    return _pack(itemids, at, lo_ns, hi_ns, vt)


class Recorder:
    """Collects the raw points of [lo_ns, hi_ns) a run had acknowledged; `save` writes them
    atomically (a run killed before saving leaves the previous memory, which stays true)."""

    def __init__(self, lo_ns: int, hi_ns: int):
        self.lo_ns, self.hi_ns = lo_ns, hi_ns
        self._itemids: list[np.ndarray] = []
        self._at: list[np.ndarray] = []
        self._vt: list[np.ndarray] = []

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
            self._vt.append(_value_types(batch)[keep])

    def add_ids(self, itemids: np.ndarray, at: np.ndarray, vt: np.ndarray) -> None:
        """Ids known to be stored without being read this run (a settled overlap slice)."""
        keep = (at >= self.lo_ns) & (at < self.hi_ns)
        if keep.any():
            self._itemids.append(np.asarray(itemids, dtype=np.int64)[keep])
            self._at.append(np.asarray(at, dtype=np.int64)[keep])
            self._vt.append(np.asarray(vt, dtype=np.int8)[keep])

    def save(self, path: Path, index_uuids: dict[str, str]) -> int:
        itemids = np.concatenate(self._itemids) if self._itemids else np.zeros(0, dtype=np.int64)
        at = np.concatenate(self._at) if self._at else np.zeros(0, dtype=np.int64)
        vt = np.concatenate(self._vt) if self._vt else np.zeros(0, dtype=np.int8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        names = sorted(index_uuids)
        with open(tmp, "wb") as out:
            np.savez(out, itemid=itemids, at=at, vt=vt, index=np.array(names, dtype=str),
                     uuid=np.array([index_uuids[n] for n in names], dtype=str))
        os.replace(tmp, path)
        return len(itemids)
