"""The write block a compaction holds on a day's index from just before its point-in-time scan to
the delete: Elasticsearch's own `index.blocks.write`, so a write that arrives meanwhile is refused
(cluster_block_exception, HTTP 403) instead of being deleted with the index unseen. Writers wait
and retry while it is on; the compaction lifts it on every way out (try/finally).

Who holds a block is recorded in the index mapping's `_meta.monetl_write_block` (run, host, pid,
since: metadata writes are not blocked). A block left by a compaction killed with SIGKILL (no
finally runs) is lifted by the next compaction of that day when it starts (the day is compacted by
one run at a time), or by `lift_stale` (every compaction run over due days calls it) once its
holder is gone or it is older than STALE_AFTER."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket

log = logging.getLogger(__name__)

META_KEY = "monetl_write_block"
STALE_AFTER = dt.timedelta(hours=6)


def _meta(es, index: str) -> dict:
    mapping = es.indices.get_mapping(index=index)
    return dict((mapping.get(index) or next(iter(mapping.values()), {})).get("mappings", {}).get("_meta") or {})


def _set_meta(es, index: str, holder: dict | None) -> None:
    meta = _meta(es, index)
    if holder is None:
        if META_KEY not in meta:
            return
        meta.pop(META_KEY)
    else:
        meta[META_KEY] = holder
    es.indices.put_mapping(index=index, meta=meta)


def holder(es, index: str) -> dict | None:
    """The recorded holder of the block on `index` if the block is on, else None."""
    settings = es.indices.get_settings(index=index, name="index.blocks.write", flat_settings=True)
    on = str(next(iter(settings.values()), {}).get("settings", {}).get("index.blocks.write", "false")).lower() == "true"
    if not on:
        return None
    return _meta(es, index).get(META_KEY) or {"run_id": "unknown"}


def block(es, index: str, run_id: str) -> None:
    """Refuse writes to `index` from now on, then refresh: every write acknowledged before the block
    is visible to the scan that follows."""
    _set_meta(es, index, {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                          "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    es.indices.put_settings(index=index, settings={"index.blocks.write": True})
    es.indices.refresh(index=index)
    log.info("write block on %s (run %s)", index, run_id)


def lift(es, index: str) -> bool:
    """Lift the block if the index still exists; True if it was lifted."""
    if not es.indices.exists(index=index):
        return False
    es.indices.put_settings(index=index, settings={"index.blocks.write": None})
    _set_meta(es, index, None)
    log.info("write block on %s lifted", index)
    return True


def _holder_gone(found: dict) -> bool:
    if found.get("host") != socket.gethostname() or not isinstance(found.get("pid"), int):
        return False
    try:
        os.kill(found["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def is_stale(found: dict, older_than: dt.timedelta = STALE_AFTER) -> bool:
    """A block whose holder process is gone (same host) or that is older than `older_than`."""
    if _holder_gone(found):
        return True
    try:
        since = dt.datetime.fromisoformat(found.get("since", ""))
    except (TypeError, ValueError):
        return True  # not ours or unreadable: no live compaction would leave it like that
    return dt.datetime.now(dt.timezone.utc) - since > older_than


def lift_stale(es, pattern: str, older_than: dt.timedelta = STALE_AFTER) -> list[str]:
    """Lift every stale block on indices matching `pattern`; returns the indices unblocked."""
    lifted = []
    found = es.indices.get_settings(index=pattern, name="index.blocks.write", flat_settings=True,
                                    expand_wildcards="open", ignore_unavailable=True, allow_no_indices=True)
    for index, body in found.items():
        if str(body.get("settings", {}).get("index.blocks.write", "false")).lower() != "true":
            continue
        record = _meta(es, index).get(META_KEY) or {}
        if is_stale(record, older_than):
            log.warning("lifting stale write block on %s left by run %s (since %s)", index,
                        record.get("run_id", "?"), record.get("since", "?"))
            lift(es, index)
            lifted.append(index)
    return lifted
