"""Pure generators of the demo fleet: market-hours shape, monotonic counters, determinism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from etl.seed import generators as g

# Wednesday 2026-11-25, CST day [2026-11-24T16:00Z, 2026-11-25T16:00Z).
WEDNESDAY_CST = int(dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.timezone.utc).timestamp())
SATURDAY_CST = WEDNESDAY_CST + 3 * g.DAY


def cst(day_start: int, hh: int, mm: int = 0) -> int:
    return day_start + hh * 3600 + mm * 60


def test_market_open_exactly_in_shanghai_sessions():
    day = np.arange(WEDNESDAY_CST, WEDNESDAY_CST + g.DAY, 60)
    is_open = g.market_open(day)
    assert is_open.sum() == 240  # 2 h morning + 2 h afternoon, in minutes
    opened = day[is_open == 1]
    assert opened[0] == cst(WEDNESDAY_CST, 9, 30) and opened[-1] == cst(WEDNESDAY_CST, 14, 59)
    assert g.market_open(np.array([cst(WEDNESDAY_CST, 11, 30), cst(WEDNESDAY_CST, 12, 0)])).tolist() == [0, 0]
    assert g.market_open(np.arange(SATURDAY_CST, SATURDAY_CST + g.DAY, 60)).sum() == 0


def test_cpu_diurnal_peaks_in_market_hours_and_is_low_at_night():
    spec = {"key": "system.cpu.util", "value_type": 0, "generator": {
        "kind": "diurnal", "base": 5, "business": 15, "market": 45, "noise": 2, "min": 0, "max": 100, "decimals": 2}}
    clocks = np.arange(WEDNESDAY_CST, WEDNESDAY_CST + g.DAY, 60)
    values = g.generate(spec, clocks, g.rng_for(1, "p"), g.rng_for(1, "n"), market_weight=1.0)["value"]
    market = g.market_open(clocks) == 1
    night = (g.cst_second_of_day(clocks) < 6 * 3600)
    lunch = (g.cst_second_of_day(clocks) >= 11 * 3600 + 45 * 60) & (g.cst_second_of_day(clocks) < 12 * 3600 + 45 * 60)
    assert values[market].mean() > 50
    assert values[night].mean() < 10
    assert values[market].mean() > values[lunch].mean() + 30
    assert values.min() >= 0 and values.max() <= 100
    assert np.array_equal(values, np.round(values, 2))
    # The busiest hour of the day (CST) is a trading hour.
    hourly = [values[(g.cst_second_of_day(clocks) // 3600) == h].mean() for h in range(24)]
    assert int(np.argmax(hourly)) in (9, 10, 13, 14)


def test_market_weight_scales_only_the_market_part():
    spec = {"key": "k", "value_type": 0, "generator": {"kind": "diurnal", "base": 5, "business": 0, "market": 40}}
    clocks = np.array([cst(WEDNESDAY_CST, 10), cst(WEDNESDAY_CST, 3)])
    trading = g.generate(spec, clocks, g.rng_for(1), g.rng_for(2), market_weight=1.0)["value"]
    mail = g.generate(spec, clocks, g.rng_for(1), g.rng_for(2), market_weight=0.1)["value"]
    assert trading.tolist() == [45.0, 5.0]
    assert mail.tolist() == [9.0, 5.0]


def test_counters_strictly_increase_and_depend_only_on_time():
    spec = {"key": "net.if.in[eth0]", "value_type": 3, "generator": {"kind": "counter", "rate": [1e5, 1e6], "swing": 0.7}}
    clocks = np.arange(WEDNESDAY_CST, WEDNESDAY_CST + 2 * g.DAY, 60)
    whole = g.generate(spec, clocks, g.rng_for(7, "h", "k", "params"), g.rng_for(1))["value"]
    assert whole.dtype == np.uint64
    assert np.all(np.diff(whole.astype(np.int64)) > 0)
    # A later window, other noise: same values where the windows overlap (re-seeding lines up).
    later = g.generate(spec, clocks[1000:], g.rng_for(7, "h", "k", "params"), g.rng_for(99))["value"]
    assert np.array_equal(later, whole[1000:])
    # Busiest around 13:00 CST, slowest around 01:00 CST.
    rate = np.diff(whole.astype(np.int64))
    sod = g.cst_second_of_day(clocks[1:])
    assert rate[(sod // 3600) == 13].mean() > 3 * rate[(sod // 3600) == 1].mean()


def test_disk_free_decreases_between_cleanups_and_uptime_grows():
    spec = {"key": "vfs.fs.size[/,free]", "value_type": 3, "generator": {
        "kind": "linear", "start": 50e9, "per_day": -100e6, "cycle_days": 90, "noise": 0, "min": 0}}
    clocks = np.arange(g.EPOCH0 + 10 * g.DAY, g.EPOCH0 + 12 * g.DAY, 60)
    free = g.linear(clocks, g.rng_for(1), 50e9, -100e6, 90, 0, 0)
    assert np.all(np.diff(free) < 0)
    assert free[0] == pytest.approx(50e9 - 10 * 100e6)
    assert g.generate(spec, clocks, g.rng_for(1), g.rng_for(1))["value"].dtype == np.uint64
    up = g.uptime(clocks, boot_offset=5 * g.DAY)
    assert np.all(np.diff(up) == 60)


def test_same_seed_same_values_other_seed_other_values():
    spec = {"key": "k", "value_type": 0, "generator": {"kind": "random_walk", "start": [30, 60], "step": 0.5,
                                                      "min": 20, "max": 95}}
    clocks = np.arange(WEDNESDAY_CST, WEDNESDAY_CST + g.DAY, 60)

    def run(seed):
        return g.generate(spec, clocks, g.rng_for(seed, "h", "k", "params"), g.rng_for(seed, "h", "k", 0))["value"]

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    walk = run(1)
    assert walk.min() >= 20 and walk.max() <= 95


def test_item_clocks_stay_in_window_with_fixed_phase_and_ordered_jitter():
    start, end = WEDNESDAY_CST + 17, WEDNESDAY_CST + 3600 + 17
    clocks = g.item_clocks(start, end, 60, phase=30)
    assert clocks[0] == WEDNESDAY_CST + 30 and clocks[-1] < end and len(clocks) == 60
    assert np.all(np.diff(clocks) == 60)
    later = g.item_clocks(start + 600, end + 600, 60, phase=30)
    assert set(later[:50]) <= set(clocks)  # a shifted window samples at the same instants
    jittered = g.item_clocks(start, end, 300, phase=10, jitter_salt=3)
    assert np.all(np.diff(jittered) > 0) and jittered.min() >= start and jittered.max() < end
    ns = g.nanoseconds(clocks, salt=7)
    assert np.all((ns > 0) & (ns < 1_000_000_000)) and len(set(ns)) > 55


def test_overlapping_reseed_gives_the_same_clock_and_ns():
    """Point ids downstream are (item, clock, ns): a re-seeded window must not stamp the same
    sample with another ns (it would become a second document in Elasticsearch)."""
    start, end = WEDNESDAY_CST, WEDNESDAY_CST + 6 * 3600
    salt = g.item_salt(1, "trading-01", "log[/var/log/app.log]")
    first = g.item_clocks(start, end, 300, phase=10, jitter_salt=salt)
    later = g.item_clocks(start + 3600, end + 3600, 300, phase=10, jitter_salt=salt)
    overlap = np.intersect1d(first, later)
    assert overlap.size >= 50 and set(first[first >= start + 3600 + 300]) <= set(later)
    ns_first = dict(zip(first.tolist(), g.nanoseconds(first, salt).tolist()))
    ns_later = dict(zip(later.tolist(), g.nanoseconds(later, salt).tolist()))
    assert all(ns_first[c] == ns_later[c] for c in overlap.tolist())
    assert not np.array_equal(g.nanoseconds(overlap, salt), g.nanoseconds(overlap, salt + 1))


def test_log_and_text_items_make_strings_with_severity():
    spec = {"key": "log[x]", "value_type": 2, "generator": {
        "kind": "log", "sources": ["app"], "lines": [[4, "ERROR code {n}"], [1, "INFO 用户 {user} 登录成功"]],
        "weights": [0.5, 0.5]}}
    clocks = np.arange(WEDNESDAY_CST, WEDNESDAY_CST + 3600, 300)
    rows = g.generate(spec, clocks, g.rng_for(1), g.rng_for(2))
    assert len(rows["value"]) == clocks.size == rows["severity"].size
    for line, sev in zip(rows["value"], rows["severity"]):
        assert (sev == 4) == line.startswith("ERROR")
    assert np.all(rows["timestamp"] <= clocks)
    choice = {"key": "system.uname", "value_type": 4, "generator": {"kind": "choice", "values": ["Linux {host}"],
                                                                   "weights": [1]}}
    assert g.generate(choice, clocks[:2], g.rng_for(1), g.rng_for(1), host="web-01")["value"] == ["Linux web-01"] * 2


def test_numeric_generator_on_text_item_is_refused():
    spec = {"key": "bad", "value_type": 4, "generator": {"kind": "diurnal", "base": 1, "business": 1, "market": 1}}
    with pytest.raises(ValueError, match="bad"):
        g.generate(spec, np.array([WEDNESDAY_CST]), g.rng_for(1), g.rng_for(1))
