"""Push run figures to Zabbix with the sender (trapper) protocol, and remember the last value of
each key in a small state file (what `monetl status` reports as last verification/run and what the
demo re-sends after installing the template).

Each run type is hooked at ONE place, the library function the CLI and the DAGs both call, with
`@reports(kind)`: the figures come from its return value (Summary / Report / results), or, for a
run that raised, from the exception, and never from its internals."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

_warned = threading.Event()   # one WARNING per process until a push succeeds again


def state_file(settings) -> Path:
    # One file per index prefix: tests (their own prefix) never overwrite the demo's figures.
    return Path(settings.home) / "state" / f"health-{settings.es_index_prefix}.json"


def _now() -> int:
    return int(time.time())


def _end_of(window) -> int | None:
    end = getattr(window, "end", None)
    return int(end.timestamp()) if end is not None else None


# --- figures per run type: pure functions of (arguments, result, error) -> {key: value} ----------

def ingest_figures(args: dict, result, error: BaseException | None) -> dict:
    source = getattr(result, "source", None) or args.get("source")
    source = source if isinstance(source, str) else getattr(source, "name", "unknown")
    if error is not None or result is None:
        return {f"monetl.ingest.failed[{source}]": 1}
    now = _now()
    read = result.points_read + result.quarantined_at_source
    out = {f"monetl.ingest.loaded[{source}]": result.points_loaded,
           f"monetl.ingest.quarantined[{source}]": result.points_quarantined,
           f"monetl.ingest.quarantine_pct[{source}]": round(100.0 * result.points_quarantined / read, 3) if read else 0.0,
           f"monetl.ingest.failed[{source}]": 0 if result.ok else 1}
    if result.ok:
        out[f"monetl.ingest.last_success[{source}]"] = now
        end = _end_of(args.get("window"))
        if end is not None:
            out[f"monetl.ingest.lag[{source}]"] = max(now - end, 0)
    return out


def gap_figures(args: dict, result, error: BaseException | None) -> dict:
    if error is not None or result is None:
        return {}
    return gap_values(result.source, result.gaps)


def gap_values(source: str, gap_buckets: list) -> dict:
    """Open gap buckets and how long the oldest has been over (0 while none has ended)."""
    now = _now()
    ended = [now - int(b.end.timestamp()) for b in gap_buckets if int(b.end.timestamp()) <= now]
    return {f"monetl.gaps.open[{source}]": len(gap_buckets),
            f"monetl.gaps.oldest_age[{source}]": max(ended) if ended else 0}


def compaction_figures(args: dict, result, error: BaseException | None) -> dict:
    from etl.errors import VerificationError

    source = getattr(result, "source", None) or args.get("source", "unknown")
    if error is not None:
        return {f"monetl.lake.verified[{source}]": 0} if isinstance(error, VerificationError) else {}
    return {f"monetl.lake.last_compaction[{source}]": _now(), f"monetl.lake.rows[{source}]": result.rows,
            f"monetl.lake.verified[{source}]": 1 if result.verified else 0}


def verification_figures(args: dict, result, error: BaseException | None) -> dict:
    from etl.errors import VerificationError

    source = args.get("source", "unknown")
    if error is not None:
        return {f"monetl.lake.verified[{source}]": 0} if isinstance(error, VerificationError) else {}
    return {f"monetl.lake.verified[{source}]": 1}


def extract_figures(args: dict, result, error: BaseException | None) -> dict:
    if error is not None or result is None:
        return {}
    rows = sum(n for r in result for t, n in r.rows.items() if t.startswith("fact_"))
    return {"monetl.extracts.last_build": _now(), "monetl.extracts.rows": rows}


def log_job_figures(args: dict, result, error: BaseException | None) -> dict:
    job = getattr(result, "job", None) or args.get("job", "unknown")
    if error is not None or result is None:
        return {}
    out = {f"monetl.logs.last_run[{job}]": _now(), f"monetl.logs.findings[{job}]": len(result.findings)}
    end = _end_of(result.window)
    if end is not None:
        out[f"monetl.logs.window_end[{job}]"] = end
    return out


FIGURES: dict[str, Callable] = {
    "ingest": ingest_figures, "gaps": gap_figures, "compaction": compaction_figures,
    "verification": verification_figures, "extracts": extract_figures, "log_job": log_job_figures,
}


def reports(kind: str):
    """Decorate the library function of a run type (first argument: Settings) so that every call
    pushes its figures, whether it returned or raised. The push happens after the run and can only
    log, never change the result or the exception."""
    figures = FIGURES[kind]

    def wrap(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def run(*a, **kw):
            try:
                result = func(*a, **kw)
            except Exception as exc:
                _push_safely(signature, a, kw, figures, None, exc)
                raise
            _push_safely(signature, a, kw, figures, result, None)
            return result

        return run

    return wrap


def _push_safely(signature, a, kw, figures, result, error) -> None:
    try:
        bound = signature.bind_partial(*a, **kw).arguments
        settings = bound.get("settings", a[0] if a else None)
        values = figures(bound, result, error)
        if values and settings is not None:
            push(settings, values)
    except Exception as exc:  # a health push must never break the run it reports on
        _warn_once(f"health figures not pushed: {type(exc).__name__}: {exc}")


def _warn_once(message: str) -> None:
    if _warned.is_set():
        log.debug("%s", message)
        return
    _warned.set()
    log.warning("%s (further failures of this process are logged at DEBUG)", message)


def push(settings, values: dict, clock: int | None = None, host: str | None = None) -> dict | None:
    """Send {key: value} to the health host's trapper items and record them in the state file.
    Returns {"processed", "failed", "total"}, or None when pushing is off or failed (logged)."""
    if not values:
        return None
    clock = clock or _now()
    record(settings, values, clock)
    if not settings.health_push:
        return None
    host = host or settings.health_host
    try:
        from zabbix_utils import ItemValue, Sender

        sender = Sender(server=settings.health_zabbix_server, port=settings.zabbix_server_port,
                        timeout=settings.health_timeout)
        response = sender.send([ItemValue(host, key, str(value), clock) for key, value in values.items()])
    except Exception as exc:  # connection refused, timeout, protocol error: the run goes on
        _warn_once(f"health push to {settings.health_zabbix_server}:{settings.zabbix_server_port} "
                   f"(host {host}) failed: {type(exc).__name__}: {exc}")
        return None
    result = {"processed": response.processed, "failed": response.failed, "total": response.total}
    if response.failed:
        _warn_once(f"health push: Zabbix refused {response.failed} of {response.total} values for host {host} "
                   f"(template not installed? run `monetl health install`)")
    else:
        _warned.clear()
    return result


def record(settings, values: dict, clock: int) -> None:
    """Keep the newest value of each key (with its clock) in the state file; atomic replace under a lock."""
    from etl.locks import exclusive

    path = state_file(settings)
    try:
        with exclusive(path.with_suffix(".lock")):
            state = read_state(settings)
            for key, value in values.items():
                if clock >= state.get(key, {}).get("clock", 0):
                    state[key] = {"value": value, "clock": clock}
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".health-")
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh, indent=1, sort_keys=True)
            os.replace(tmp, path)
    except OSError as exc:
        _warn_once(f"health state {path} not written: {exc}")


def read_state(settings) -> dict:
    try:
        return json.loads(state_file(settings).read_text())
    except (OSError, ValueError):
        return {}


def resend_state(settings, host: str | None = None) -> dict | None:
    """Send every recorded value again with its own clock (after the template was installed, values
    pushed before were refused)."""
    state = read_state(settings)
    by_clock: dict[int, dict] = {}
    for key, entry in state.items():
        by_clock.setdefault(int(entry["clock"]), {})[key] = entry["value"]
    total = {"processed": 0, "failed": 0, "total": 0}
    for clock, values in sorted(by_clock.items()):
        got = push(settings, values, clock=clock, host=host)
        if got is None:
            return None
        total = {k: total[k] + got[k] for k in total}
    return total


def utc(ts: int | float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "-"
