"""Validation of point batches against schemas/expectations/points.json.

Two readers of the same suite file:
  * `row_failures` evaluates every expectation on every row with pyarrow compute and returns the
    reason of the first failing expectation per row: this decides what is quarantined.
  * `ge_check` runs the suite through Great Expectations 1.x on the batch (or a sample of it,
    `meta.ge_sample_rows`) and reports which expectations failed and how often.
GE's per-row results are awkward (indices of a pandas frame, capped lists) and its cost is large, so
the vectorised rules decide per row and GE is the independent, declarative check on a sample.
Measured by bench/ingest on this machine (2 cores shared with other jobs): GE validates a whole
50k-row batch in ~1.5 s (~33k rows/s, pandas conversion included) and a 5k-row sample in ~0.5 s
(a fixed cost per call dominates); the row rules do ~1.2M rows/s and the whole pipeline ~7-9k
points/s, bounded by Elasticsearch. GE on every row would be the pipeline's biggest CPU cost
(~1.2 CPU-hours/day at 144M points/day, on the same cores Elasticsearch needs), so the pipeline
runs GE on a strided sample (`GESampler`: every 40th row, validated once per 500k rows read, suite
meta) and the row rules on everything. The first GE call of a process costs 3-10 s (import + context).

A batch with rows that fail is split: the good rows load, each bad row goes to the quarantine with
its reason and the offending value."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import queue
import re
import threading
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from etl.schema import SCHEMAS_DIR
from etl.window import Window

log = logging.getLogger(__name__)

SUITE_PATH = SCHEMAS_DIR / "expectations" / "points.json"
_CONDITION_IN = re.compile(r"^\s*(\w+)\s+in\s+\[([-\d,\s]+)\]\s*$")
_CONDITION_EQ = re.compile(r"^\s*(\w+)\s*==\s*(-?\d+)\s*$")


@functools.cache
def suite_spec() -> dict:
    import json

    return json.loads(SUITE_PATH.read_text(encoding="utf-8"))


def parameters(window: Window | None, now: dt.datetime | None = None) -> dict[str, int]:
    """Values for the suite's $PARAMETER placeholders: the clock range a batch of `window` may hold.

    Without a window (replay of quarantined points from many runs) any clock up to now is in range;
    the fixed floor expectation still rejects an unset clock."""
    allow = suite_spec()["meta"]["parameters"]
    if window is None:
        now = now or dt.datetime.now(dt.timezone.utc)
        return {"clock_min": 0, "clock_max": int(now.timestamp()) + allow["future_allowance_s"]}
    # GE's between is inclusive; the window end is exclusive.
    return {"clock_min": window.start_s - allow["late_allowance_s"],
            "clock_max": window.end_s + allow["future_allowance_s"] - 1}


def _resolve(value, params: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params[value["$PARAMETER"]]
    return value


def _condition_mask(batch: pa.RecordBatch, condition: str | None) -> pa.Array | None:
    """Rows a row_condition selects; only the two simple forms the suite uses are understood."""
    if not condition:
        return None
    if match := _CONDITION_IN.match(condition):
        column, values = match.group(1), [int(v) for v in match.group(2).split(",") if v.strip()]
        return pc.fill_null(pc.is_in(batch.column(column), value_set=pa.array(values).cast(batch.schema.field(column).type)), False)
    if match := _CONDITION_EQ.match(condition):
        column, value = match.group(1), int(match.group(2))
        return pc.fill_null(pc.equal(batch.column(column), value), False)
    raise ValueError(f"row_condition {condition!r} in {SUITE_PATH.name} is not of the form 'col in [..]' or 'col == n'")


def _is_float(array: pa.Array) -> bool:
    return pa.types.is_floating(array.type)


def _expectation_failures(batch: pa.RecordBatch, expectation: dict, params: dict) -> pa.Array:
    """Boolean array: True where the row fails this expectation."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    column = batch.column(kwargs["column"])
    present = pc.is_valid(column)
    if kind == "expect_column_values_to_not_be_null":
        failed = pc.invert(present)
        if _is_float(column):  # pandas (and so GE) counts NaN as missing
            failed = pc.or_(failed, pc.fill_null(pc.is_nan(column), False))
    elif kind == "expect_column_values_to_be_between":
        low, high = _resolve(kwargs.get("min_value"), params), _resolve(kwargs.get("max_value"), params)
        failed = pa.array([False] * len(column))
        if low is not None:
            failed = pc.or_(failed, pc.fill_null(pc.less(column, low), False))
        if high is not None:
            failed = pc.or_(failed, pc.fill_null(pc.greater(column, high), False))
        if _is_float(column):  # comparisons with NaN are false: catch NaN and inf explicitly
            failed = pc.or_(failed, pc.fill_null(pc.invert(pc.is_finite(column)), False))
    elif kind == "expect_column_values_to_be_in_set":
        value_set = pa.array(kwargs["value_set"]).cast(column.type)
        failed = pc.and_(present, pc.invert(pc.fill_null(pc.is_in(column, value_set=value_set), False)))
    elif kind == "expect_column_value_lengths_to_be_between":
        lengths = pc.utf8_length(column)
        failed = pa.array([False] * len(column))
        if kwargs.get("min_value") is not None:
            failed = pc.or_(failed, pc.fill_null(pc.less(lengths, kwargs["min_value"]), False))
        if kwargs.get("max_value") is not None:
            failed = pc.or_(failed, pc.fill_null(pc.greater(lengths, kwargs["max_value"]), False))
    else:
        raise ValueError(f"expectation type {kind!r} in {SUITE_PATH.name} has no row rule in etl/quality.py")
    selected = _condition_mask(batch, kwargs.get("row_condition"))
    return pc.and_(failed, selected) if selected is not None else failed


def _invalid_utf8(array: pa.Array) -> pa.Array:
    """True where a string value is not valid UTF-8. A fast full validation first: almost every
    batch is clean, and only a dirty one pays for the per-value check."""
    try:
        array.validate(full=True)
        return pa.array([False] * len(array))
    except pa.ArrowInvalid:
        pass
    flags = []
    for raw in array.view(pa.binary()).to_pylist():
        try:
            if raw is not None:
                raw.decode("utf-8")
            flags.append(False)
        except UnicodeDecodeError:
            flags.append(True)
    return pa.array(flags)


def _describe(batch: pa.RecordBatch, row: int, columns: list[str]) -> str:
    parts = []
    for name in columns:
        raw = batch.column(name).view(pa.binary())[row].as_py() if pa.types.is_string(batch.schema.field(name).type) \
            else batch.column(name)[row].as_py()
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
            raw = raw if len(raw) <= 60 else f"{raw[:40]}...({len(raw)} chars)"
        parts.append(f"{name}={raw!r}")
    return ", ".join(parts)


def row_failures(batch: pa.RecordBatch, window: Window | None, failed: set[str] | None = None) -> dict[int, str]:
    """Row index -> reason ("<suite reason>: <column>=<value>") for every row that fails a rule (the
    first failing rule names it). `failed`, if given, receives every rule that any row fails."""
    spec = suite_spec()
    params = parameters(window)
    reasons: dict[int, str] = {}

    def record(mask: pa.Array, reason: str, columns: list[str]) -> None:
        if not pc.any(mask).as_py():
            return
        if failed is not None:
            failed.add(reason)
        for row in pc.indices_nonzero(mask).to_pylist():
            if row not in reasons:
                reasons[row] = f"{reason}: {_describe(batch, row, columns)}"

    # Invalid UTF-8 first: it makes the other string checks meaningless for that row.
    for rule in spec["meta"].get("row_rules", []):
        if rule["rule"] != "valid_utf8":
            raise ValueError(f"row rule {rule['rule']!r} in {SUITE_PATH.name} is not known")
        for name in rule["columns"]:
            record(_invalid_utf8(batch.column(name)), rule["reason"], [name])
    for expectation in spec["expectations"]:
        column = expectation["kwargs"]["column"]
        shown = [column] + (["value"] if column == "value_uint" else []) + \
                (["value_type"] if column in ("value", "value_text", "value_uint") else []) + \
                (["clock"] if column == "clock" else [])
        record(_expectation_failures(batch, expectation, params), expectation["meta"]["reason"], list(dict.fromkeys(shown)))
    return reasons


def records(batch: pa.RecordBatch, rows: list[int]) -> list[dict]:
    """Rows as plain dicts for the quarantine; invalid UTF-8 is kept visible with backslash escapes."""
    if not rows:
        return []
    taken = batch.take(pa.array(rows, type=pa.int64()))
    columns = {}
    for name, array in zip(taken.schema.names, taken.columns):
        if pa.types.is_string(array.type):
            columns[name] = [None if v is None else v.decode("utf-8", errors="backslashreplace")
                             for v in array.view(pa.binary()).to_pylist()]
        else:
            columns[name] = array.to_pylist()
    return [{name: columns[name][i] for name in taken.schema.names} for i in range(len(rows))]


# --- Great Expectations -------------------------------------------------------------------------

@dataclass
class GEReport:
    """What Great Expectations said about one batch (or its sample)."""
    rows_checked: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # expectation reason -> unexpected count
    seconds: float = 0.0


_GE_LOCK = threading.Lock()


def _ge_runtime():
    """GE context, batch definition and suite, built once per process (GE's import alone is ~3 s),
    whichever thread asks first."""
    with _GE_LOCK:
        return _ge_runtime_once()


@functools.cache
def _ge_runtime_once():
    import great_expectations as gx

    # GE logs its own setup at INFO (dozens of lines per process); keep warnings only.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")] + \
            ["great_expectations"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    except Exception:  # older/newer GE: the bars are only cosmetic
        log.debug("could not switch GE progress bars off")
    asset = context.data_sources.add_pandas("monetl_points").add_dataframe_asset("points")
    definition = asset.add_batch_definition_whole_dataframe("batch")
    spec = suite_spec()
    suite = gx.ExpectationSuite(name=spec["name"])
    for expectation in spec["expectations"]:
        cls = _ge_class(expectation["type"])
        kwargs = dict(expectation["kwargs"])
        if kwargs.get("row_condition"):
            kwargs["row_condition"] = _ge_condition(kwargs["row_condition"])
            kwargs.pop("condition_parser", None)
        suite.add_expectation(cls(**kwargs, meta=expectation["meta"]))
    return definition, suite


def _ge_condition(text: str):
    """The suite's string row_condition as a GE Condition object (string conditions are deprecated
    since GX 1.9); same two forms as `_condition_mask`."""
    from great_expectations.expectations.row_conditions import Column

    if match := _CONDITION_IN.match(text):
        return Column(match.group(1)).is_in([int(v) for v in match.group(2).split(",") if v.strip()])
    if match := _CONDITION_EQ.match(text):
        return Column(match.group(1)) == int(match.group(2))
    raise ValueError(f"row_condition {text!r} in {SUITE_PATH.name} is not of the form 'col in [..]' or 'col == n'")


def _ge_class(type_name: str):
    import great_expectations as gx

    camel = "".join(part.capitalize() for part in type_name.split("_"))
    return getattr(gx.expectations, camel)


def ge_check(batch: pa.RecordBatch, window: Window | None, sample_rows: int | None = None) -> GEReport:
    """Run the suite with Great Expectations on `batch` (first `sample_rows` rows spread evenly over
    it; 0 = all). Rows with invalid UTF-8 are left out: pandas cannot hold them, and the row rules
    have already quarantined them."""
    import time

    started = time.perf_counter()
    sample_rows = suite_spec()["meta"].get("ge_sample_rows", 0) if sample_rows is None else sample_rows
    if sample_rows and batch.num_rows > sample_rows:
        step = batch.num_rows / sample_rows
        batch = batch.take(pa.array([int(i * step) for i in range(sample_rows)], type=pa.int64()))
    clean = pa.array([True] * batch.num_rows)
    for name in batch.schema.names:
        if pa.types.is_string(batch.schema.field(name).type):
            clean = pc.and_(clean, pc.invert(_invalid_utf8(batch.column(name))))
    batch = batch.filter(clean)
    # Nested columns are not validated by the suite; leaving them out keeps the pandas frame cheap.
    frame = batch.select([n for n in batch.schema.names if n not in ("tags", "host_groups")]).to_pandas()
    definition, suite = _ge_runtime()
    result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, expectation_parameters=parameters(window), result_format="SUMMARY")
    failed = {}
    for item in result.results:
        if not item.success:
            reason = (item.expectation_config.meta or {}).get("reason", item.expectation_config.type)
            failed[reason] = int(item.result.get("unexpected_count") or 0)
    return GEReport(rows_checked=batch.num_rows, failed=failed, seconds=time.perf_counter() - started)


@dataclass
class Checked:
    good: pa.RecordBatch
    bad_rows: list[int]
    reasons: dict[int, str]
    ge: GEReport | None
    failed: set[str] = field(default_factory=set)  # every rule some row fails (not only the first)


def check(batch: pa.RecordBatch, window: Window | None, use_ge: bool = False) -> Checked:
    """Split a batch into the rows that load and the rows that go to quarantine (with reasons).
    `use_ge` also runs Great Expectations on this batch alone (tests, replay); the pipeline samples
    across batches instead (`GESampler`): GE's fixed cost per call is ~0.3-0.5 s here."""
    failed: set[str] = set()
    reasons = row_failures(batch, window, failed)
    bad_rows = sorted(reasons)
    if bad_rows:
        keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows), type=pa.int64()),
                                  value_set=pa.array(bad_rows, type=pa.int64())))
        good = batch.filter(keep)
    else:
        good = batch
    report = ge_check(batch, window, sample_rows=0) if use_ge and batch.num_rows else None
    if report is not None:
        compare(report, failed)
    return Checked(good=good, bad_rows=bad_rows, reasons=reasons, ge=report, failed=failed)


class GESampler:
    """Great Expectations over a run: every `stride`-th row of each batch goes into a sample, and GE
    validates the sample each time it holds `sample_rows` rows (and once at the end). Defaults from
    the suite's meta: ge_sample_rows rows per ge_every_rows rows read.

    GE runs in a thread of its own, which imports it and builds its context as soon as the sampler
    is made (while the run reads its catalog), so its 3-10 s first call never holds up extraction
    and loading, and its memory sits under the run's peak from the start whatever the span."""

    def __init__(self, window: Window | None, sample_rows: int | None = None, every_rows: int | None = None):
        meta = suite_spec()["meta"]
        self.window = window
        self.sample_rows = sample_rows if sample_rows is not None else meta["ge_sample_rows"]
        every_rows = every_rows if every_rows is not None else meta["ge_every_rows"]
        self.stride = max(1, every_rows // max(1, self.sample_rows)) if self.sample_rows else 1
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._offset = 0  # keeps the stride going across batch boundaries
        self.total = GEReport()
        self._flagged: set[str] = set()
        self._samples: queue.Queue = queue.Queue(maxsize=2)  # two samples (ge_sample_rows each) at most
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._validate, name="ge-sampler", daemon=True)
        self._worker.start()

    def offer(self, batch: pa.RecordBatch, failed: set[str]) -> None:
        if batch.num_rows == 0:
            return
        first = (-self._offset) % self.stride
        rows = list(range(first, batch.num_rows, self.stride))
        self._offset += batch.num_rows
        if rows:
            self._pending.append(batch.take(pa.array(rows, type=pa.int64())))
            self._pending_rows += len(rows)
        self._flagged.update(failed)
        if self._pending_rows >= (self.sample_rows or 1):
            self._hand_over()

    def finish(self) -> GEReport:
        """Validate what is pending, wait for GE, and return the run's totals (a GE error raises here)."""
        if self._pending_rows:
            self._hand_over()
        self._put(None)
        self._worker.join()
        if self._error is not None:
            raise self._error
        return self.total

    def close(self) -> None:
        """Let the GE thread go without waiting (a run that failed before finish)."""
        self._closed.set()
        try:
            self._samples.put_nowait(None)
        except queue.Full:
            pass

    def _hand_over(self) -> None:
        sample = pa.Table.from_batches(self._pending).combine_chunks().to_batches()[0]
        self._pending, self._pending_rows = [], 0
        self._put((sample, frozenset(self._flagged)))

    def _put(self, item) -> None:
        while self._worker.is_alive():
            try:
                self._samples.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _validate(self) -> None:
        try:
            _ge_runtime()
        except BaseException as exc:  # raised by finish()
            self._error = exc
        while not self._closed.is_set():
            item = self._samples.get()
            if item is None:
                return
            if self._error is not None:
                continue
            sample, flagged = item
            try:
                report = ge_check(sample, self.window, sample_rows=0)
            except BaseException as exc:
                self._error = exc
                continue
            self.total.rows_checked += report.rows_checked
            self.total.seconds += report.seconds
            for reason, count in report.failed.items():
                self.total.failed[reason] = self.total.failed.get(reason, 0) + count
            compare(report, flagged)


def compare(report: GEReport, flagged: set[str]) -> None:
    """GE failing an expectation the row rules never flagged means the two readers of the suite
    disagree: say so loudly (the row rules still decide)."""
    for reason, count in report.failed.items():
        if reason not in flagged and not (reason.startswith("numeric item without") and
                                          "numeric value not finite (NaN or infinity)" in flagged):
            log.warning("Great Expectations: %d row(s) fail %r but no row rule flagged it", count, reason)
