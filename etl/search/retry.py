"""How monetl waits out a struggling Elasticsearch, in one place.

Every request goes through `RetryingTransport` (etl.search.client makes the client with it):
  * 429 / 502 / 503 / 504 and connection errors or timeouts are retried with exponential backoff
    and jitter for up to `es_retry_seconds`; then a connection failure raises one
    `StoreUnavailable` ("Elasticsearch unreachable at URL: reason (N attempts in S s)") and an
    HTTP error is handed to the client, which raises its ApiError as usual;
  * an index write block (`cluster_block_exception`, e.g. `index.blocks.write` set by compaction
    between its scan and the delete) is waited out for up to `es_block_wait_seconds`, then
    `IndexWriteBlocked` names the index. Nothing is lost: the caller never counted those writes.
A bulk request answers 200 with the block (or a 429/503) on each item instead, so
`retry_blocked_items` re-sends just those documents under the same waits.

The client's own retries (immediate, with a traceback logged per attempt) are switched off, and
its node-pool chatter about a single node being "dead" is dropped: the one error says it all."""

from __future__ import annotations

import logging
import re
import time

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, Transport
from elastic_transport.client_utils import DEFAULT

from etl.backoff import Backoff
from etl.errors import IndexWriteBlocked, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 502, 503, 504)
DEFAULT_RETRY_SECONDS = 120.0
DEFAULT_BLOCK_WAIT_SECONDS = 900.0
_sleep = time.sleep  # tests replace it
_clock = time.monotonic
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_BLOCKED_INDEX = re.compile(r"index \[([^\]]+)\] blocked")


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    text = str(getattr(exc, "message", "") or exc)  # elastic_transport keeps the cause in .message
    match = _ERRNO.search(text)
    return match.group(1).strip().lower() if match else (text.split(":")[-1].strip()[:120] or type(exc).__name__)


def _error_of(body) -> dict:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def write_blocked_index(status: int, body) -> str | None:
    """The index named by a write-block refusal (HTTP 403 cluster_block_exception), else None."""
    if status != 403:
        return None
    error = _error_of(body)
    causes = [error] + list(error.get("root_cause") or [])
    for cause in causes:
        if isinstance(cause, dict) and cause.get("type") == "cluster_block_exception":
            match = _BLOCKED_INDEX.search(str(cause.get("reason", "")))
            return match.group(1) if match else "?"
    return None


class RetryingTransport(Transport):
    """elastic_transport.Transport with monetl's retry policy (see the module doc). Configure with
    `configure(url, retry_seconds, block_wait_seconds)` after construction."""

    display_url = ""
    retry_seconds = DEFAULT_RETRY_SECONDS
    block_wait_seconds = DEFAULT_BLOCK_WAIT_SECONDS
    backoff = Backoff()

    def configure(self, url: str, retry_seconds: float, block_wait_seconds: float) -> "RetryingTransport":
        self.display_url, self.retry_seconds, self.block_wait_seconds = url, retry_seconds, block_wait_seconds
        return self

    def perform_request(self, method, target, **kwargs):
        requested = kwargs.get("max_retries", DEFAULT)
        # `client.options(max_retries=0)` still means "no retries"; otherwise the budget decides.
        no_retry = requested is not DEFAULT and int(requested) == 0
        kwargs["max_retries"] = 0
        started = _clock()
        attempt = 0
        while True:
            try:
                response = super().perform_request(method, target, **kwargs)
            except (TransportConnectionError, ConnectionTimeout) as exc:
                elapsed = _clock() - started
                if no_retry or elapsed >= self.retry_seconds:
                    raise StoreUnavailable(
                        f"Elasticsearch unreachable at {self.display_url}: {_short_reason(exc)} "
                        f"({attempt + 1} attempt{'s' if attempt else ''} in {elapsed:.0f} s)") from None
                what = f"unreachable at {self.display_url} ({_short_reason(exc)})"
                budget = self.retry_seconds
            else:
                status = response.meta.status
                blocked = write_blocked_index(status, response.body)
                elapsed = _clock() - started
                if blocked is not None:
                    if no_retry or elapsed >= self.block_wait_seconds:
                        raise IndexWriteBlocked(
                            f"index {blocked} is write-blocked (a compaction of its day is in progress?): "
                            f"{method} {target} still refused after {elapsed:.0f} s; nothing was written, "
                            f"re-run once the compaction has finished") from None
                    what, budget = f"index {blocked} write-blocked", self.block_wait_seconds
                elif status in RETRY_STATUS and not no_retry and elapsed < self.retry_seconds:
                    what, budget = f"HTTP {status} from {self.display_url}", self.retry_seconds
                else:
                    return response
            pause = min(self.backoff.delay(attempt), max(0.0, budget - elapsed) + 0.01)
            # One line when the trouble starts; the attempts after it only with -v.
            log.log(logging.INFO if attempt == 0 else logging.DEBUG,
                    "Elasticsearch %s on %s %s; retrying with backoff for up to %.0f s (retry %d in %.1f s)",
                    what, method, target.split("?")[0], budget, attempt + 1, pause)
            _sleep(pause)
            attempt += 1


def _transient_item(reason: str) -> str | None:
    """"block" for a write-block refusal, "busy" for a 429/503 one (queue full, shards not yet
    started after a node restart), None for a refusal of the document itself."""
    if "cluster_block_exception" in reason:
        return "block"
    if reason.startswith(("elasticsearch rejected the document: HTTP 503",
                          "elasticsearch rejected the document: HTTP 429")):
        return "busy"
    return None


def retry_blocked_items(client, docs, send, result):
    """Re-send the documents of `result.failed` that Elasticsearch refused for a passing reason (an
    index write block; 429/503, e.g. shards still starting after a restart) until they load: for up
    to the transport's `block_wait_seconds` while blocked, `retry_seconds` otherwise. Then raise
    IndexWriteBlocked naming the index, or StoreUnavailable; such documents are never quarantined.

    `send(subset)` bulk-loads a Documents subset and returns its LoadResult; rows map back to `docs`."""
    transport = getattr(client, "transport", None)
    block_wait = getattr(transport, "block_wait_seconds", DEFAULT_BLOCK_WAIT_SECONDS)
    busy_wait = getattr(transport, "retry_seconds", DEFAULT_RETRY_SECONDS)
    backoff = getattr(transport, "backoff", Backoff())
    started, attempt = _clock(), 0
    while True:
        kinds = {row: _transient_item(reason) for row, reason in result.failed.items()}
        again_rows = [row for row, kind in kinds.items() if kind]
        if not again_rows:
            return result
        blocked = "block" in kinds.values()
        index = docs.index_of(again_rows[0])
        elapsed = _clock() - started
        wait = block_wait if blocked else busy_wait
        if elapsed >= wait:
            if blocked:
                raise IndexWriteBlocked(
                    f"index {index} is write-blocked (a compaction of its day is in progress?): {len(again_rows)} "
                    f"documents still refused after {elapsed:.0f} s; they are not counted as loaded, re-run "
                    f"once the compaction has finished")
            raise StoreUnavailable(
                f"Elasticsearch kept refusing {len(again_rows)} documents for {index} for {elapsed:.0f} s "
                f"({result.failed[again_rows[0]][len('elasticsearch rejected the document: '):][:200]}); "
                f"they are not counted as loaded, re-run the same window")
        pause = min(backoff.delay(attempt), max(0.0, wait - elapsed) + 0.01)
        log.log(logging.INFO if attempt == 0 else logging.DEBUG,
                "%d documents for %s refused for now (%s); retrying for up to %.0f s (retry %d in %.1f s)",
                len(again_rows), index, "index write-blocked" if blocked else "node busy or starting", wait,
                attempt + 1, pause)
        _sleep(pause)
        attempt += 1
        subset = docs.subset(again_rows)
        again = send(subset)
        for row in again_rows:
            del result.failed[row]
        result.loaded += again.loaded
        for sub_row, reason in again.failed.items():
            result.failed[again_rows[sub_row]] = reason


class _QuietNodePool(logging.Filter):
    """Drop the node pool's per-failure warnings ("has failed for N times in a row"): with monetl's
    retries they repeat what the one final error says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def quiet_client_logs() -> None:
    pool = logging.getLogger("elastic_transport.node_pool")
    if not any(isinstance(f, _QuietNodePool) for f in pool.filters):
        pool.addFilter(_QuietNodePool())
