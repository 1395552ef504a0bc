"""Which seconds of a run's overlap must be read again: the slices where the source holds points
the previous run did not load.

A scheduled run re-reads the minutes before its window for late values. With the previous run's
memory of the exact ids it loaded there (etl.overlap_memory), a slice whose source count equals
the number of remembered ids in it holds nothing new: the remembered ids are a subset of the
source's rows, so equal counts mean equal sets. Counting is one cheap request per value type
and item batch, reading is hundreds of thousands of rows: at 100,000 items a 10-minute overlap
is ~1M rows, and a late value usually sits in the last seconds before the window (an agent's
buffer, a proxy's last send). So the tail slice is counted apart first and the rest is halved
only where the counts differ; each split costs one count (the other half is the difference).

What counting cannot see: a row deleted at the source in the same slice as a late value (equal
counts, different sets). Zabbix deletes recent history only with the item itself, so this needs an
item deleted within the overlap while another one's value arrives late in the same slice."""

from __future__ import annotations

from typing import Callable

# A slice this short is read rather than split further: a minute of 100,000 items is ~100k rows,
# less work than two more rounds of counts at that scale.
DEFAULT_MIN_SLICE_S = 60

Counter = Callable[[int, int], "int | None"]  # points in [lo_s, hi_s), or None: cannot tell


def unsettled(lo_s: int, hi_s: int, source: Counter, known: Counter,
              min_slice_s: int = DEFAULT_MIN_SLICE_S) -> list[tuple[int, int]] | None:
    """The [lo, hi) second spans of [lo_s, hi_s) whose source count differs from the known count,
    oldest first; None if the source cannot count the span (read all of it)."""
    total = source(lo_s, hi_s)
    if total is None:
        return None
    spans: list[tuple[int, int]] = []

    def walk(lo: int, hi: int, count: int, tail_first: bool) -> bool:
        if count == known(lo, hi):
            return True
        if hi - lo <= min_slice_s:
            spans.append((lo, hi))
            return True
        mid = hi - min_slice_s if tail_first else lo + (hi - lo) // 2
        left = source(lo, mid)
        if left is None:
            return False
        return walk(lo, mid, left, False) and walk(mid, hi, count - left, False)

    if not walk(lo_s, hi_s, total, True):
        return None
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def settled(lo_s: int, hi_s: int, reread: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The complement of `reread` in [lo_s, hi_s): the spans not read again."""
    out, at = [], lo_s
    for lo, hi in reread:
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < hi_s:
        out.append((at, hi_s))
    return out
