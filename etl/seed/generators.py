"""Pure value generators for the demo fleet: numpy arrays in, values out, no I/O.

Shapes a broker's ops team would recognise: CPU and latency follow office hours and peak in the
Shanghai trading sessions (09:30-11:30, 13:00-15:00 CST, weekdays); counters and uptime only
grow; free disk space slowly shrinks until a periodic clean-up. Counter, disk and uptime values
are functions of absolute time (not of the seeded window), so re-seeding a later window lines up
with what an earlier run left before it."""

from __future__ import annotations

import json
import zlib

import numpy as np

CST_OFFSET = 8 * 3600
DAY = 86400
# Fixed origin for the time-anchored shapes (counters, disk cycles, uptime): 2024-01-01T00:00Z.
EPOCH0 = 1704067200
MARKET_SESSIONS_CST = ((9 * 3600 + 1800, 11 * 3600 + 1800), (13 * 3600, 15 * 3600))
KINDS = ("diurnal", "random_walk", "linear", "counter", "uptime", "choice", "health_json", "log")


def rng_for(*parts) -> np.random.Generator:
    """A generator seeded from stable hashes of the parts (Python's hash() changes per process)."""
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


def draw(rng: np.random.Generator, spec) -> float:
    """A parameter given as [low, high] is drawn once per host and item; a number is used as is."""
    if isinstance(spec, (list, tuple)):
        return float(rng.uniform(spec[0], spec[1]))
    return float(spec)


# -- calendar -------------------------------------------------------------------
def cst_second_of_day(clocks: np.ndarray) -> np.ndarray:
    return (clocks + CST_OFFSET) % DAY


def cst_weekday(clocks: np.ndarray) -> np.ndarray:
    """0 = Monday ... 6 = Sunday in China Standard Time (1970-01-01 was a Thursday)."""
    return ((clocks + CST_OFFSET) // DAY + 3) % 7


def market_open(clocks: np.ndarray) -> np.ndarray:
    """1.0 while the Shanghai exchange trades continuously (weekdays, holidays ignored), else 0.0."""
    sod = cst_second_of_day(clocks)
    inside = np.zeros(clocks.shape, dtype=bool)
    for first, last in MARKET_SESSIONS_CST:
        inside |= (sod >= first) & (sod < last)
    return (inside & (cst_weekday(clocks) < 5)).astype(float)


def business_activity(clocks: np.ndarray) -> np.ndarray:
    """0..1 office-hours curve: zero at night, a smooth hump from 07:00 to 20:00 CST, weekends at 30%."""
    hours = cst_second_of_day(clocks) / 3600.0
    hump = np.where((hours >= 7) & (hours <= 20), np.sin(np.pi * (hours - 7) / 13), 0.0)
    return hump * np.where(cst_weekday(clocks) < 5, 1.0, 0.3)


# -- sampling times -------------------------------------------------------------
def item_salt(*parts) -> int:
    """A stable 32-bit salt for one item's time stamps (seed, host, key)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """A stable pseudo-random 64-bit mix of each value (splitmix64 finaliser): the same for the
    same value in every window, unlike a random stream whose position depends on the window."""
    with np.errstate(over="ignore"):
        x = (values.astype(np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def stable_uniform(values: np.ndarray, salt: int) -> np.ndarray:
    """Per-value pseudo-random numbers in [0, 1) that depend only on (value, salt): for choices
    (a missed sample, a jitter) that must come out the same when an overlapping window is
    generated again."""
    return (_mix(values, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def item_clocks(start: int, end: int, interval: int, phase: int, jitter_salt: int | None = None
                ) -> np.ndarray:
    """Collection times in [start, end): every `interval` s at a fixed per-item `phase` (seconds
    into the interval, so re-seeded windows line up with earlier ones); with jitter_salt (log
    items) each time moves later by up to one interval, keeping order and the window. The jitter
    is a function of the grid time, so an overlapping re-seed yields the very same clocks."""
    first = start - start % interval + phase % interval
    if first < start:
        first += interval
    clocks = np.arange(first, end, interval, dtype=np.int64)
    if jitter_salt is not None and clocks.size:
        clocks = clocks + (_mix(clocks, jitter_salt) % np.uint64(interval)).astype(np.int64)
        clocks = clocks[clocks < end]
    return clocks


def nanoseconds(clocks: np.ndarray, salt: int) -> np.ndarray:
    """Non-zero ns, as the agent/server stamp them, derived from (item salt, clock): re-seeding an
    overlapping window gives each sample the same (clock, ns), hence the same point id downstream,
    instead of a second copy of the point in Elasticsearch."""
    return (_mix(clocks, salt) % np.uint64(999_999_999)).astype(np.int64) + 1


def outage_mask(clocks: np.ndarray, slot: int, hosts: int, per_day: int, start_s: int, minutes: int) -> np.ndarray:
    """True where a host of a rotating outage is down: every UTC day `per_day` of the `hosts`
    outage hosts (by slot, rotating day by day) send nothing from start_s (seconds after 00:00 UTC)
    for `minutes`. A function of absolute time, like the counters: re-seeding lines up."""
    day = (clocks - EPOCH0) // DAY
    down_today = ((slot - day * per_day) % hosts) < per_day
    second = (clocks - EPOCH0) % DAY
    return down_today & (second >= start_s) & (second < start_s + minutes * 60)


# -- numeric shapes -------------------------------------------------------------
def diurnal(clocks, noise_rng, market_weight=1.0, base=0.0, business=0.0, market=0.0, noise=0.0):
    return (base + business * business_activity(clocks) + market * market_weight * market_open(clocks)
            + noise * noise_rng.standard_normal(clocks.size))


def random_walk(clocks, noise_rng, start=0.0, step=1.0, low=None, high=None):
    steps = noise_rng.standard_normal(clocks.size) * step
    values = start + np.cumsum(steps)
    if low is not None and high is not None:
        # Reflect at the bounds instead of sticking to them.
        span = high - low
        values = low + span - np.abs((values - low) % (2 * span) - span)
    return values


def linear(clocks, noise_rng, start=0.0, per_day=0.0, cycle_days=90.0, phase_days=0.0, noise=0.0):
    """start + per_day * days since the last periodic reset (disk clean-up every cycle_days)."""
    cycle = cycle_days * DAY
    elapsed = (clocks - EPOCH0 + phase_days * DAY) % cycle
    return start + per_day * elapsed / DAY + noise * noise_rng.standard_normal(clocks.size)


def counter(clocks, start=0.0, rate=1.0, swing=0.5):
    """A byte counter growing at rate * (1 + swing*sin(daily phase)), peaking ~13:00 CST; the
    closed-form integral makes it a pure function of time, strictly increasing while swing < 1."""
    phase = np.pi / 2 - 2 * np.pi * 13 / 24
    theta = 2 * np.pi * ((clocks + CST_OFFSET) % DAY) / DAY + phase
    elapsed = (clocks - EPOCH0).astype(float)
    periodic = swing * DAY / (2 * np.pi) * (1 - np.cos(theta))
    return np.floor(start + rate * (elapsed + periodic))


def uptime(clocks, boot_offset=0.0, cycle_days=120.0):
    """Seconds since the last reboot; hosts reboot every cycle_days at their own phase."""
    return (clocks - EPOCH0 + boot_offset) % int(cycle_days * DAY)


# -- one item --------------------------------------------------------------------
def generate(spec: dict, clocks: np.ndarray, param_rng: np.random.Generator, noise_rng: np.random.Generator,
             host: str = "", market_weight: float = 1.0) -> dict[str, np.ndarray | list]:
    """Values of one item at `clocks`. Returns {"value": ...} and, for log items, also "timestamp",
    "source", "severity", "logeventid". param_rng draws the per-host constants (same for every
    window), noise_rng the per-row noise (per window)."""
    gen = spec["generator"]
    kind = gen["kind"]
    numeric = int(spec["value_type"]) in (0, 3)
    if kind == "diurnal":
        values = diurnal(clocks, noise_rng, market_weight, draw(param_rng, gen["base"]),
                         draw(param_rng, gen["business"]), draw(param_rng, gen["market"]), float(gen.get("noise", 0)))
    elif kind == "random_walk":
        values = random_walk(clocks, noise_rng, draw(param_rng, gen["start"]), float(gen["step"]),
                             gen.get("min"), gen.get("max"))
    elif kind == "linear":
        values = linear(clocks, noise_rng, draw(param_rng, gen["start"]), draw(param_rng, gen["per_day"]),
                        float(gen.get("cycle_days", 90)),
                        draw(param_rng, gen.get("phase_days", [0, gen.get("cycle_days", 90)])),
                        float(gen.get("noise", 0)))
    elif kind == "counter":
        values = counter(clocks, draw(param_rng, [0, 1e9]), draw(param_rng, gen["rate"]), float(gen["swing"]))
    elif kind == "uptime":
        cycle = float(gen.get("cycle_days", 120))
        values = uptime(clocks, draw(param_rng, [0, cycle * DAY]), cycle)
    elif kind == "choice":
        picks = noise_rng.choice(len(gen["values"]), size=clocks.size, p=_normalised(gen["weights"]))
        texts = [v.format(host=host) for v in gen["values"]]
        return {"value": [texts[i] for i in picks]}
    elif kind == "health_json":
        return {"value": _health_reports(clocks, noise_rng, host)}
    elif kind == "log":
        return _log_rows(gen, clocks, noise_rng)
    else:
        raise ValueError(f"item {spec['key']}: unknown generator kind {kind!r}; known: {', '.join(KINDS)}")
    if not numeric:
        raise ValueError(f"item {spec['key']}: generator {kind!r} makes numbers but value_type is {spec['value_type']}")
    if "min" in gen or "max" in gen:
        values = np.clip(values, gen.get("min", -np.inf), gen.get("max", np.inf))
    if int(spec["value_type"]) == 3:
        return {"value": np.rint(values).astype(np.uint64)}
    # Rounded so values survive text round trips (API JSON, CSV) exactly.
    return {"value": np.round(values, int(gen.get("decimals", 4)))}


def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _health_reports(clocks: np.ndarray, rng: np.random.Generator, host: str) -> list[str]:
    threads = rng.integers(8, 64, size=clocks.size)
    queue = rng.poisson(3, size=clocks.size) + (market_open(clocks) * rng.poisson(20, size=clocks.size)).astype(int)
    return [json.dumps({"host": host, "status": "ok" if q < 40 else "busy", "threads": int(t), "queue": int(q)},
                       separators=(",", ":"))
            for t, q in zip(threads, queue)]


def _log_rows(gen: dict, clocks: np.ndarray, rng: np.random.Generator) -> dict:
    picks = rng.choice(len(gen["lines"]), size=clocks.size, p=_normalised(gen["weights"]))
    sources = rng.choice(len(gen["sources"]), size=clocks.size)
    users = rng.integers(100, 999, size=clocks.size)
    numbers = rng.integers(1, 10**6, size=(clocks.size, 4))
    lines, severity = [], []
    for i, pick in enumerate(picks):
        sev, template = gen["lines"][pick]
        n = numbers[i]
        lines.append(template.format(user=f"u{users[i]}", ip=f"10.{n[0] % 256}.{n[1] % 256}.{n[2] % 256}",
                                     n=int(n[3]), ms=int(n[0] % 900 + 100), a=int(n[1] % 256), b=int(n[2] % 256)))
        severity.append(int(sev))
    return {
        "value": lines,
        # The time written in the log line itself, a moment before the agent read it.
        "timestamp": clocks - rng.integers(0, 5, size=clocks.size),
        "source": [gen["sources"][s] for s in sources],
        "severity": np.asarray(severity, dtype=np.int64),
        "logeventid": np.zeros(clocks.size, dtype=np.int64),
    }
