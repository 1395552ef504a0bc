"""etl.overlap_check: only the slices where the source holds more than the memory are read again,
and every such slice is found, with few counts."""

from __future__ import annotations

import numpy as np
import pytest

from etl import overlap_check as oc

LO, HI = 10_000, 10_600  # a 10-minute overlap, in seconds


def counters(source_times, known_times):
    source_times, known_times = np.sort(source_times), np.sort(known_times)
    calls = []

    def count(times, log):
        def f(lo, hi):
            if log:
                calls.append((lo, hi))
            return int(np.searchsorted(times, hi) - np.searchsorted(times, lo))
        return f

    return count(source_times, True), count(known_times, False), calls  # calls: the source's


def stored(step=1):
    return np.arange(LO, HI, step)


def test_nothing_new_is_settled_with_one_count():
    source, known, calls = counters(stored(), stored())
    assert oc.unsettled(LO, HI, source, known) == []
    assert calls == [(LO, HI)]


def test_a_late_value_in_the_last_minute_costs_two_source_counts():
    times = stored()
    source, known, calls = counters(np.append(times, HI - 5), times)
    assert oc.unsettled(LO, HI, source, known) == [(HI - 60, HI)]
    assert calls == [(LO, HI), (LO, HI - 60)]  # the tail's count is the difference


@pytest.mark.parametrize("late", [LO, LO + 1, LO + 299, LO + 300, HI - 61, HI - 60, HI - 1])
def test_every_late_value_lies_in_a_reread_span(late):
    times = stored(7)
    source, known, _ = counters(np.append(times, late), times)
    spans = oc.unsettled(LO, HI, source, known)
    assert any(lo <= late < hi for lo, hi in spans), spans
    assert sum(hi - lo for lo, hi in spans) <= 60


def test_late_values_everywhere_read_at_most_what_holds_them():
    rng = np.random.default_rng(5)
    times = stored(3)
    late = rng.integers(LO, HI, 4)
    source, known, _ = counters(np.append(times, late), times)
    spans = oc.unsettled(LO, HI, source, known)
    for t in late:
        assert any(lo <= t < hi for lo, hi in spans)
    assert spans == sorted(spans)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # merged: no two adjacent spans


def test_a_memory_with_fewer_points_than_the_source_everywhere_reads_everything():
    source, known, _ = counters(stored(), [])
    assert oc.unsettled(LO, HI, source, known) == [(LO, HI)]


def test_a_source_that_cannot_count_reads_all():
    assert oc.unsettled(LO, HI, lambda lo, hi: None, lambda lo, hi: 0) is None
    calls = []

    def half_blind(lo, hi):
        calls.append((lo, hi))
        return 10 if len(calls) == 1 else None

    assert oc.unsettled(LO, HI, half_blind, lambda lo, hi: 0) is None


def test_settled_is_the_complement():
    assert oc.settled(LO, HI, []) == [(LO, HI)]
    assert oc.settled(LO, HI, [(HI - 60, HI)]) == [(LO, HI - 60)]
    assert oc.settled(LO, HI, [(LO, LO + 60), (LO + 300, LO + 360)]) == [(LO + 60, LO + 300), (LO + 360, HI)]
    assert oc.settled(LO, HI, [(LO, HI)]) == []
