"""Pure parts shared by the Zabbix API and DB extractors: retention rules (history vs trends),
history/trend rows -> point columns, and fetching a window under a row budget by splitting it.

Text values: Zabbix stores UTF-8, so text comes through as-is (however long); the size limit is the
validation stage's rule and it quarantines oversized values there. A value that cannot be encoded
as UTF-8 at all (a lone surrogate from a JSON escape) would break the Arrow batch, so it is
quarantined here with reason "value is not valid UTF-8"; a numeric value that does not parse is
quarantined with "not a number", an unsigned one that is not a uint64 (negative, above 2^64-1, a
fraction: numeric(20) and the API allow all three) with "unsigned value outside 0..2^64-1" or
"unsigned value not an integer". Unsigned values are carried exactly (value_uint, uint64) and
never through float64."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import SourceError
from etl.schema import LOG, NUMERIC_TYPES, UINT, UINT64_MAX
from etl.sources.base import HOURLY, RAW, ItemCatalog, build_points

HOUR = 3600
_UNITS = {"s": 1, "m": 60, "h": HOUR, "d": 86400, "w": 7 * 86400}
_PERIOD = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")

# Tables per value type (the DB mode reads them; history.get's `history` parameter is the code).
HISTORY_TABLES = {0: "history", 1: "history_str", 2: "history_log", 3: "history_uint", 4: "history_text"}
TREND_TABLES = {0: "trends", 3: "trends_uint"}


def chunks(seq: Sequence, size: int) -> Iterator[list]:
    """Consecutive lists of at most `size` elements (item ids per request or query)."""
    for i in range(0, len(seq), size):
        yield list(seq[i:i + size])


def parse_period(text: str | None) -> int | None:
    """Zabbix storage period ("90d", "1w", "3600", "0") in seconds; None when it cannot be known
    here (a user macro such as {$HISTORY}), which callers treat as "history is kept"."""
    if text is None:
        return None
    match = _PERIOD.match(str(text))
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def history_cutoff(history_period: int | None, now_s: int) -> int | None:
    """Epoch second before which an item's raw history is gone (housekeeper), rounded UP to the
    hour so that every hour is read either wholly from trends or wholly from history.
    None = history kept indefinitely as far as we can tell."""
    if history_period is None:
        return None
    cutoff = now_s - history_period
    return -(-cutoff // HOUR) * HOUR


@dataclass(frozen=True)
class Span:
    """Inclusive second range [lo, hi], the shape history.get's time_from/time_till take."""

    lo: int
    hi: int

    @property
    def seconds(self) -> int:
        return self.hi - self.lo + 1


def plan_spans(start_s: int, end_s: int, cutoff: int | None, numeric: bool, use_trends: str = "auto"
               ) -> list[tuple[str, Span]]:
    """Split [start_s, end_s) into ("1h", span) read from trends and ("raw", span) read from
    history, by the item's history cutoff. Text items have no trends: their expired part is absent.
    use_trends: "auto" (by retention), "never" (history only), "only" (trends only, numeric)."""
    parts: list[tuple[str, Span]] = []
    if end_s <= start_s:
        return parts
    if use_trends == "never":
        return [(RAW, Span(start_s, end_s - 1))]
    if use_trends == "only":
        return [(HOURLY, Span(start_s, end_s - 1))] if numeric else []
    split = start_s if cutoff is None else min(max(cutoff, start_s), end_s)
    if split > start_s and numeric:
        parts.append((HOURLY, Span(start_s, split - 1)))
    if split < end_s:
        parts.append((RAW, Span(split, end_s - 1)))
    return parts


class TooBig(Exception):
    """The source refused a request because of its size (HTTP 500 with an empty body: the PHP memory wall)."""


Fetch = Callable[[Span, Sequence[int], int | None], list]
Count = Callable[[Span, Sequence[int]], int]


def fetch_under_budget(span: Span, itemids: Sequence[int], budget: int, count: Count, fetch: Fetch,
                       stats: dict[str, int] | None = None, estimate: Count | None = None) -> Iterator[list]:
    """Yield row lists covering `span` x `itemids`, each request at most `budget` rows.

    countOutput sizes the first cut (k equal time slices for k x budget rows); a request that still
    fails (TooBig) or comes back over budget is halved in time, and at one second it is halved by
    items. Each request is asked for budget+1 rows so "over budget" is seen without a second count.
    Spans are disjoint inclusive second ranges, so nothing is read twice at a boundary.
    stats (optional) counts re-plans: "over_budget" and "too_big".
    estimate (optional) guesses the rows of the whole request: when it fits the budget the first
    request is the fetch itself, without a count (each request costs the frontend ~50 ms whatever its
    size); a wrong guess costs one over-budget answer, which is cut in two like any other."""
    stats = stats if stats is not None else {}
    first = _UNCOUNTED if estimate is not None and estimate(span, itemids) <= budget else None
    todo: list[tuple[Span, list[int], int | None]] = [(span, list(itemids), first)]
    while todo:
        part, ids, known = todo.pop()
        n = count(part, ids) if known is None else known
        if n == 0:
            continue
        if n != _UNCOUNTED and n > budget and _splittable(part, ids):
            stats["over_budget"] = stats.get("over_budget", 0) + 1
            todo.extend(reversed(_cut(part, ids, math.ceil(n / budget))))
            continue
        limit = budget + 1 if _splittable(part, ids) else None
        try:
            rows = fetch(part, ids, limit)
        except TooBig as exc:
            if not _splittable(part, ids):
                raise SourceError(f"zabbix: item {ids[0]} second {part.lo} is too big to read in one request "
                                  f"({exc})") from exc
            stats["too_big"] = stats.get("too_big", 0) + 1
            todo.extend(reversed(_cut(part, ids, 2)))
            continue
        if limit is not None and len(rows) > budget:
            stats["over_budget"] = stats.get("over_budget", 0) + 1
            todo.extend(reversed(_cut(part, ids, 2)))
            continue
        yield rows


_UNCOUNTED = -1  # a request fetched without a count first


def _splittable(part: Span, ids: list[int]) -> bool:
    return part.seconds > 1 or len(ids) > 1


def _cut(part: Span, ids: list[int], pieces: int) -> list[tuple[Span, list[int], None]]:
    """Chronological pieces: by time while the span has more than one second, else by items."""
    if part.seconds > 1:
        pieces = max(2, min(pieces, part.seconds))
        bounds = [part.lo + (part.seconds * i) // pieces for i in range(pieces + 1)]
        return [(Span(bounds[i], bounds[i + 1] - 1), ids, None) for i in range(pieces) if bounds[i + 1] > bounds[i]]
    half = len(ids) // 2
    return [(part, ids[:half], None), (part, ids[half:], None)]


# --- rows -> point columns ------------------------------------------------------------------------

def _encodable(texts: list) -> tuple[pa.Array | None, list[int]]:
    try:
        return pa.array(texts, type=pa.string()), []
    except (UnicodeEncodeError, pa.ArrowInvalid, pa.ArrowTypeError):
        bad = []
        for i, text in enumerate(texts):
            try:
                if text is not None:
                    str(text).encode("utf-8")
            except UnicodeEncodeError:
                bad.append(i)
        return None, bad


def _numbers(values: list) -> tuple[np.ndarray, list[int]]:
    try:
        return np.asarray(values, dtype=np.float64), []
    except (ValueError, TypeError):
        out = np.empty(len(values), dtype=np.float64)
        bad = []
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (ValueError, TypeError):
                bad.append(i)
                out[i] = np.nan
        return out, bad


LOG_FIELDS = ("log_timestamp", "log_source", "log_severity", "log_eventid")
# history_log column / history.get field of each log point field
LOG_SOURCE_COLUMNS = {"log_timestamp": "timestamp", "log_source": "source", "log_severity": "severity",
                      "log_eventid": "logeventid"}


def parse_uint(text) -> tuple[int | None, str | None]:
    """One unsigned value (API string, DB numeric(20) as text or Decimal) -> (int, None), or
    (None, reason) when it is not a 64-bit unsigned integer."""
    if text is None:
        return None, "unsigned item without a value"
    try:
        number = Decimal(str(text).strip())
    except InvalidOperation:
        return None, f"not a number: {text!r}"
    if not number.is_finite():
        return None, f"not a number: {text!r}"
    if number != number.to_integral_value():
        return None, f"unsigned value not an integer: {text!r}"
    value = int(number)
    if value < 0 or value > UINT64_MAX:
        return None, f"unsigned value outside 0..{UINT64_MAX}: {text!r}"
    return value, None


def uint_values(values) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Exact uint64 array of unsigned values, and (row, reason) of those that are not uint64 (nulls
    there). Vectorised (Arrow's strict string -> uint64 cast); only a batch holding a bad value
    pays for the per-row check that names it."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_unsigned_integer(values.type) and values.null_count == 0:
            return values.cast(pa.uint64()), []
        texts = values if pa.types.is_string(values.type) else values.cast(pa.string())
    else:
        texts = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    try:
        exact = pc.cast(texts, pa.uint64())
        if exact.null_count == 0:
            return exact, []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed, bad = [], []
    for i, text in enumerate(texts.to_pylist()):
        value, reason = parse_uint(text)
        parsed.append(value)
        if reason:
            bad.append((i, reason))
    return pa.array(parsed, type=pa.uint64()), bad


def _uint_as_float(exact: pa.Array) -> np.ndarray:
    # float64 of an exact uint64 (rounded above 2^53 by design: `value` is the approximate column)
    return pc.cast(exact, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _log_columns(log: dict, n: int) -> tuple[dict, list[tuple[int, str]]]:
    """The log point fields from history_log columns / history.get fields (typed or strings)."""
    cols, bad = {}, []
    for name in ("log_timestamp", "log_severity", "log_eventid"):
        raw = log.get(name)
        if raw is None:
            continue
        if isinstance(raw, (pa.Array, pa.ChunkedArray)) and raw.null_count == 0:
            cols[name] = np.asarray(raw.to_numpy(zero_copy_only=False), dtype=np.int64)
            continue
        try:
            cols[name] = np.asarray([int(v) for v in raw], dtype=np.int64)
        except (TypeError, ValueError):
            out = np.zeros(n, dtype=np.int64)
            for i, v in enumerate(raw):
                try:
                    out[i] = int(v)
                except (TypeError, ValueError):
                    bad.append((i, f"log {LOG_SOURCE_COLUMNS[name]} not an integer: {v!r}"))
            cols[name] = out
    raw = log.get("log_source")
    if raw is not None:
        if isinstance(raw, (pa.Array, pa.ChunkedArray)):
            cols["log_source"] = (raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw).cast(pa.string())
        else:
            texts, bad_idx = _encodable(list(raw))
            if bad_idx:
                keep = set(bad_idx)
                texts = pa.array([None if i in keep else v for i, v in enumerate(raw)], type=pa.string())
                bad += [(i, "log source is not valid UTF-8 (lone surrogate)") for i in bad_idx]
            cols["log_source"] = texts
    return cols, bad


def history_columns(itemid: Sequence, clock: Sequence, ns: Sequence, value: Sequence, value_type: int,
                    log: dict | None = None) -> tuple[dict, list[tuple[int, str]]]:
    """Columns for build_points from one history table (API strings or DB values), and the
    (row index, reason) of rows that cannot be converted. Every row carries `value_type`, the
    type of the table it came from, which is not always the item's current type. Unsigned values
    are exact (value_uint) plus their float64 (value); `log` holds the history_log extras by point
    field name (LOG_FIELDS) for value_type 2."""
    bad: list[tuple[int, str]] = []
    cols = {"itemid": np.asarray(itemid, dtype=np.int64), "clock": np.asarray(clock, dtype=np.int64),
            "ns": np.asarray(ns, dtype=np.int64)}
    n = len(cols["itemid"])
    cols["value_type"] = np.full(n, value_type, dtype=np.int8)
    if value_type == UINT:
        exact, bad = uint_values(value)
        cols["value_uint"] = exact
        cols["value"] = _uint_as_float(exact)
    elif isinstance(value, (pa.Array, pa.ChunkedArray)) and value.null_count == 0 and (
            pa.types.is_floating(value.type) or pa.types.is_integer(value.type) or pa.types.is_string(value.type)):
        # Already typed and validated by Arrow (the DB fast path): no per-row conversion.
        if isinstance(value, pa.ChunkedArray):
            value = value.combine_chunks()
        if value_type in NUMERIC_TYPES:
            cols["value"] = value.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            cols["value_text"] = value.cast(pa.string())
    else:
        values = list(value)
        if value_type in NUMERIC_TYPES:
            numbers, bad_idx = _numbers(values)
            cols["value"] = numbers
            bad += [(i, f"not a number: {values[i]!r}") for i in bad_idx]
        else:
            texts, bad_idx = _encodable(values)
            if bad_idx:
                keep = set(bad_idx)
                texts = pa.array([None if i in keep else v for i, v in enumerate(values)], type=pa.string())
                bad += [(i, "value is not valid UTF-8 (lone surrogate)") for i in bad_idx]
            cols["value_text"] = texts
    if value_type == LOG and log:
        log_cols, log_bad = _log_columns(log, n)
        cols.update(log_cols)
        bad += log_bad
    bad_ns = np.flatnonzero((cols["ns"] < 0) | (cols["ns"] > 999_999_999))
    bad += [(int(i), f"ns out of range: {int(cols['ns'][i])}") for i in bad_ns]
    first: dict[int, str] = {}
    for i, reason in bad:
        first.setdefault(i, reason)
    return cols, sorted(first.items())


def drop_rows(cols: dict, bad_rows: Sequence[int]) -> dict:
    if not bad_rows:
        return cols
    keep = np.ones(len(cols["itemid"]), dtype=bool)
    keep[list(bad_rows)] = False
    out = {}
    for name, col in cols.items():
        if isinstance(col, pa.Array):
            out[name] = col.filter(pa.array(keep))
        else:
            out[name] = np.asarray(col)[keep]
    return out


def in_window(cols: dict, start_ns: int, end_ns: int) -> dict:
    """Keep rows with clock*1e9+ns in [start_ns, end_ns): exact edges for windows not on whole seconds."""
    t = cols["clock"].astype(np.int64) * 1_000_000_000 + cols["ns"].astype(np.int64)
    outside = np.flatnonzero((t < start_ns) | (t >= end_ns))
    return drop_rows(cols, outside.tolist())


def history_batch(catalog: ItemCatalog, run_id: str, value_type: int, itemid, clock, ns, value,
                  window_ns: tuple[int, int], on_bad: Callable[[dict, str], None], log: dict | None = None
                  ) -> pa.RecordBatch:
    """One point batch from one history table's result; unconvertible rows go to on_bad(record, reason)."""
    cols, bad = history_columns(itemid, clock, ns, value, value_type, log)
    values = (value.to_pylist() if isinstance(value, (pa.Array, pa.ChunkedArray)) else list(value)) if bad else None
    for i, reason in bad:
        on_bad({"itemid": int(cols["itemid"][i]), "clock": int(cols["clock"][i]), "ns": int(cols["ns"][i]),
                "value_type": value_type, "value": values[i]}, reason)
    cols = drop_rows(cols, [i for i, _ in bad])
    cols = in_window(cols, *window_ns)
    return build_points(catalog, run_id=run_id, resolution=RAW, **cols)


def trend_batch(catalog: ItemCatalog, run_id: str, itemid, clock, num, value_min, value_avg, value_max,
                window_ns: tuple[int, int], value_type: int | None = None) -> pa.RecordBatch:
    """Hourly trend rows: value = avg, min/max/count filled, ns 0. Unsigned trends (trends_uint
    stores an integer average) also get value_uint = the exact average; one that is not a uint64
    stays null there and validation quarantines the point."""
    cols = {"itemid": np.asarray(itemid, dtype=np.int64), "clock": np.asarray(clock, dtype=np.int64)}
    cols["ns"] = np.zeros(len(cols["itemid"]), dtype=np.int64)
    if value_type is not None:
        cols["value_type"] = np.full(len(cols["itemid"]), value_type, dtype=np.int8)
    if value_type == UINT:
        cols["value_uint"], _ = uint_values(value_avg)
        value_avg = _numbers(list(value_avg) if not isinstance(value_avg, (pa.Array, pa.ChunkedArray))
                             else value_avg.to_pylist())[0]
    cols["value"] = np.asarray(value_avg, dtype=np.float64)
    cols["value_min"] = np.asarray(value_min, dtype=np.float64)
    cols["value_max"] = np.asarray(value_max, dtype=np.float64)
    cols["value_count"] = np.asarray(num, dtype=np.int64)
    cols = in_window(cols, *window_ns)
    return build_points(catalog, run_id=run_id, resolution=HOURLY, **cols)
