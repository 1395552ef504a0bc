"""Zabbix through its JSON-RPC API (zabbix_utils): metadata once per source object, then history
per value type (history.get's `history` picks the table; it returns an item's rows in that table
whatever the item's current type, so history written before item.update changed the type is read
by probing the other tables too), items in batches, time spans under a row budget (see
zabbix_common.fetch_under_budget), and trend.get for hours older than an item's history retention.

Facts this shapes around (Zabbix 6.0, measured): no paging or cursor; time_from/time_till are
inclusive (spans are inclusive second ranges, disjoint by construction); ~150k float rows hit PHP's
memory limit as HTTP 500 with an empty body: halve and retry (only that answer; other 5xx and
timeouts are retried as they are a few times, then fail with SourceError).
Auth: a token or user/password; zabbix_utils puts it in the body (< 6.4) or a Bearer header."""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import socket
import threading
import time
from typing import Iterator, Sequence
from urllib.error import HTTPError, URLError

from etl.backoff import Backoff
from etl.config import Settings
from etl.errors import SourceError
from etl.schema import LOG, NUMERIC_TYPES
from etl.sources.base import HOURLY, MAX_BATCH_ROWS, RAW, ItemCatalog, bucket_start, bucket_starts, rebatch
from etl.sources.zabbix_common import (LOG_FIELDS, LOG_SOURCE_COLUMNS, Span, TooBig, chunks, fetch_under_budget,
                                       history_batch, plan_spans, trend_batch)
from etl.sources.zabbix_meta import (BuiltCatalogCache, CatalogCache, Retention, catalog_from_api, digest,
                                     host_groups_selector)
from etl.sources.zabbix_source import ZabbixSource

log = logging.getLogger(__name__)
# zabbix_utils logs whole request bodies (with the auth token) at DEBUG: keep it out of our logs.
logging.getLogger("zabbix_utils").setLevel(logging.INFO)

_sleep = time.sleep  # tests replace it


class _Transient(Exception):
    """A failure worth retrying as is (not a size problem): 5xx other than the wall, a timeout."""


def _empty_body(error: HTTPError) -> bool:
    try:
        return not (error.read() or b"").strip()
    except Exception:  # body already consumed or the connection gone: nothing was said
        return True


DEFAULT_ROW_BUDGET = 50_000
# Measured at 100,000 items on 2 cores (bench/scale): two requests in flight keep the frontend and this
# process busy at once; more only queue behind the same cores.
DEFAULT_PARALLEL = 2
# Items per history request: as many as fit half the row budget at one value per item and minute
# (the design interval), at most this many. Every request costs the frontend ~50 ms before its first
# row: at 100,000 items a 5-minute window took 23.1 s in 422 requests of 500 items and 8.4 s in 66
# of 5,000 (two in flight); a 1-hour window keeps ~400 items a request.
DEFAULT_ITEM_BATCH = 5000
# items per countOutput probe of an earlier value type's table (see _plans), and per count of the
# overlap check. Measured on Zabbix 6.0 here: ~50 ms per call plus ~12 ms per 1,000 item ids, so few
# large probes beat many small ones (100,000 items, 5 minutes: 22 probes of 20,000 took 7.2 s, 5 of
# 100,000 took 3.8 s, one at a time); an id list this long is ~0.7 MB of request, far under PHP's limits.
EARLIER_TYPE_ITEM_BATCH = 100_000
# Items per catalog item.get (with tags): ~10 MB of PHP memory, far under the stock 128M.
DEFAULT_CATALOG_PAGE = 5_000
_ITEM_OUTPUT = ["itemid", "hostid", "key_", "name", "units", "value_type", "history", "trends"]


class ZabbixApiSource(ZabbixSource):
    mode = "api"

    def __init__(self, settings: Settings, hosts: list[str] | None = None, itemids: list[int] | None = None,
                 max_batch_rows: int = MAX_BATCH_ROWS, row_budget: int = DEFAULT_ROW_BUDGET,
                 item_batch: int = DEFAULT_ITEM_BATCH, use_trends: str = "auto", timeout: int = 120,
                 api=None, now: dt.datetime | None = None, retries: int = 3, backoff: Backoff = Backoff(1.0, 20.0),
                 earlier_type_batch: int = EARLIER_TYPE_ITEM_BATCH, catalog_page: int = DEFAULT_CATALOG_PAGE,
                 catalog_cache: bool | None = None, parallel: int | None = None):
        super().__init__(settings, hosts, itemids, max_batch_rows, use_trends, now)
        self.retries, self.backoff = retries, backoff
        self.row_budget = row_budget
        self.item_batch = item_batch
        self.earlier_type_batch = earlier_type_batch
        self.timeout = timeout
        self._api = api
        # A caller's own API object (tests) gets no cache unless asked: its answers are its own.
        self.use_catalog_cache = api is None if catalog_cache is None else catalog_cache
        self._owns_session = False
        self.catalog_page = catalog_page
        self.catalog_seconds = 0.0
        self.requests = 0  # API calls made, for logs and tests
        # History requests in flight at once; a caller's own API object (tests) is called one at a time.
        self.parallel = max(1, parallel if parallel is not None else (DEFAULT_PARALLEL if api is None else 1))
        self._counting = threading.Lock()
        # re-plans: "over_budget" (count or result above the budget), "too_big" (HTTP 500, empty body)
        self.stats: dict[str, int] = {"over_budget": 0, "too_big": 0, "catalog_cached": 0, "catalog_built_cached": 0}

    # -- connection ---------------------------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            from zabbix_utils import ZabbixAPI
            from zabbix_utils.exceptions import ModuleBaseException

            url = self.settings.zabbix_url
            try:
                api = ZabbixAPI(url=url, timeout=self.timeout, skip_version_check=True)
                if self.settings.zabbix_token:
                    api.login(token=self.settings.zabbix_token.reveal())
                else:
                    api.login(user=self.settings.zabbix_user, password=self.settings.zabbix_password.reveal())
                    self._owns_session = True
            except ModuleBaseException as exc:
                raise SourceError(f"zabbix API {url}: login as {self.settings.zabbix_user!r} failed: "
                                  f"{_redact(exc, self.settings)}") from None
            except OSError as exc:
                raise SourceError(f"zabbix API {url} unreachable: {exc}") from None
            self._api = api
            log.info("zabbix API %s version %s", url, api.version)
        return self._api

    @property
    def version(self) -> float:
        return float(self.api.version.major)

    def close(self) -> None:
        if self._api is not None and self._owns_session:
            try:
                self._api.logout()
            except Exception as exc:  # logging out is a courtesy; the session expires anyway
                log.debug("zabbix logout failed: %s", exc)
        self._api = None

    def __del__(self) -> None:
        # Callers that never close() must not leave a login session behind on the server.
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "ZabbixApiSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, params: dict):
        """One API call. Only an HTTP 500 with an empty body is PHP's memory wall: TooBig, the caller
        splits the request. Other 5xx, timeouts, dropped connections and unreadable answers are
        retried `retries` times with backoff, then SourceError; a refusal is SourceError at once."""
        attempt = 0
        while True:
            try:
                return self._call_once(method, params)
            except _Transient as exc:
                if attempt >= self.retries:
                    raise SourceError(f"zabbix API {self.settings.zabbix_url}: {method} failed {attempt + 1} times: "
                                      f"{exc}") from None
                pause = self.backoff.delay(attempt)
                log.info("zabbix API %s: %s; retry %d of %d in %.1f s", method, exc, attempt + 1, self.retries, pause)
                _sleep(pause)
                attempt += 1

    def _call_once(self, method: str, params: dict):
        from zabbix_utils.exceptions import APIRequestError, ProcessingError

        with self._counting:
            self.requests += 1
        try:
            return self.api.send_api_request(method, params)["result"]
        except ProcessingError as exc:
            # zabbix_utils flattens the cause into text; the original is still the context.
            cause = exc.__context__
            if isinstance(cause, HTTPError):
                if cause.code == 500 and _empty_body(cause):
                    raise TooBig(f"{method}: HTTP 500 with an empty body (PHP memory limit)") from None
                if cause.code >= 500:
                    raise _Transient(f"HTTP {cause.code} {cause.reason}") from None
                raise SourceError(f"zabbix API {self.settings.zabbix_url}: {method} failed: HTTP {cause.code} "
                                  f"{cause.reason}") from None
            if isinstance(cause, URLError) and isinstance(cause.reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"timed out after {self.timeout}s") from None
            if isinstance(cause, URLError):
                raise _Transient(f"unreachable: {cause.reason}") from None
            if isinstance(cause, ValueError):
                raise _Transient("the answer is not JSON") from None
            raise SourceError(f"zabbix API {self.settings.zabbix_url}: {method} failed: {exc}") from None
        except (TimeoutError, socket.timeout):
            raise _Transient(f"timed out after {self.timeout}s") from None
        except APIRequestError as exc:
            raise SourceError(f"zabbix API {method} refused: {_redact(exc, self.settings)}") from None
        except OSError as exc:
            raise _Transient(f"connection failed: {exc}") from None

    # -- metadata -----------------------------------------------------------------------------
    def _load_catalog(self) -> tuple[ItemCatalog, dict[int, Retention]]:
        selector, groups_key = host_groups_selector(self.version)
        host_params = {"output": ["hostid", "host", "name"], "selectTags": ["tag", "value"],
                       selector: ["name"]}
        if self.hosts:
            host_params["filter"] = {"host": self.hosts}
        started = time.monotonic()
        hosts = self.call("host.get", host_params)
        hostids = sorted(h["hostid"] for h in hosts)
        hk_history, hk_trends = self._housekeeping()
        items_cache, built_cache = self._catalog_caches()
        items = fingerprint = built_fingerprint = None
        if items_cache is not None and hostids:
            fingerprint = self._item_fingerprint(hostids)
            # The finished catalog of the same items under the same hosts (names, groups, tags) and
            # housekeeping, as the DB mode keeps it: building 100,000 items from the item.get answer
            # is ~1.4 s of this process at the start of every run, while Elasticsearch has nothing to do.
            built_fingerprint = [*fingerprint, digest(sorted(hosts, key=lambda h: str(h["hostid"])), groups_key,
                                                      hk_history, hk_trends)]
            built = built_cache.load(built_fingerprint)
            if built is not None:
                self.stats["catalog_cached"], self.stats["catalog_built_cached"] = 1, 1
                self.catalog_seconds = time.monotonic() - started
                log.info("zabbix API catalog: %d hosts, %d items (cached) in %.1fs", len(hosts), len(built[0]),
                         self.catalog_seconds)
                return built
            items = items_cache.load(fingerprint)
        self.stats["catalog_cached"], self.stats["catalog_built_cached"] = int(items is not None), 0
        if items is None:
            items = self._items(hostids)
            if items_cache is not None and fingerprint is not None:
                items_cache.save(fingerprint, items)
        catalog, retention = catalog_from_api(hosts, items, groups_key, hk_history, hk_trends)
        if built_cache is not None and built_fingerprint is not None:
            built_cache.save(built_fingerprint, catalog, retention)
        self.catalog_seconds = time.monotonic() - started
        log.info("zabbix API catalog: %d hosts, %d items (%s) in %.1fs", len(hosts), len(catalog),
                 "items cached" if self.stats["catalog_cached"] else "read", self.catalog_seconds)
        return catalog, retention

    def _housekeeping(self) -> tuple[str | None, str | None]:
        """Global history/trends overrides (hk_history / hk_trends when their *_global flag is on),
        the same values DB mode reads from the `config` table. The API has them in
        housekeeping.get (5.2+; settings.get refuses hk_* fields)."""
        try:
            hk = self.call("housekeeping.get", {"output": ["hk_history_global", "hk_history",
                                                           "hk_trends_global", "hk_trends"]})
        except SourceError as exc:  # non-super-admin users may not read it: item values stand
            log.info("zabbix housekeeping overrides not readable (%s); using item retention", exc)
            return None, None
        return (hk.get("hk_history") if str(hk.get("hk_history_global")) == "1" else None,
                hk.get("hk_trends") if str(hk.get("hk_trends_global")) == "1" else None)

    def _item_params(self, hostids: Sequence[str]) -> dict:
        params = {"hostids": list(hostids), "webitems": True}
        if self.itemids:
            params["itemids"] = self.itemids
        return params

    def _item_fingerprint(self, hostids: Sequence[str]) -> tuple[int, int]:
        """(items in scope, highest itemid): two small calls that change whenever an item is
        created, deleted or re-created, so a cached catalog never misses a new item's history."""
        count = int(self.call("item.get", {**self._item_params(hostids), "countOutput": True}))
        top = self.call("item.get", {**self._item_params(hostids), "output": ["itemid"], "sortfield": "itemid",
                                     "sortorder": "DESC", "limit": 1})
        return count, int(top[0]["itemid"]) if top else 0

    def _items(self, hostids: list[str]) -> list[dict]:
        """item.get in host chunks of about `catalog_page` items (from one count), each split in
        half on the memory wall (HTTP 500, empty body) like history: never one unbounded call."""
        if not hostids:
            return []
        total = int(self.call("item.get", {**self._item_params(hostids), "countOutput": True}))
        per_host = max(1.0, total / len(hostids))
        hosts_per_call = max(1, min(len(hostids), int(self.catalog_page // per_host)))
        items: list[dict] = []
        pending = list(chunks(hostids, hosts_per_call))
        while pending:
            chunk = pending.pop()
            try:
                items += self.call("item.get", {**self._item_params(chunk), "output": _ITEM_OUTPUT,
                                                "selectTags": ["tag", "value"]})
            except TooBig:
                if len(chunk) == 1:
                    raise SourceError(f"zabbix API item.get of host {chunk[0]} alone exceeds the frontend's "
                                      "memory or time limit: raise PHP memory_limit for the API") from None
                self.stats["too_big"] += 1
                half = len(chunk) // 2
                pending += [chunk[:half], chunk[half:]]
        return items

    def _catalog_caches(self) -> tuple[CatalogCache | None, BuiltCatalogCache | None]:
        """The item.get answer (reused when only hosts changed) and the finished catalog of one API
        scope; (None, None) when disabled (ttl 0, or catalog_cache off)."""
        ttl = self.settings.zabbix_catalog_ttl
        if ttl <= 0 or not self.use_catalog_cache:
            return None, None
        key = CatalogCache.key(self.settings.zabbix_url, self.settings.zabbix_user, sorted(self.hosts or []),
                               sorted(self.itemids or []))
        state = self.settings.home / "state"
        return (CatalogCache(state / f"zabbix-catalog-{key}.json", ttl),
                BuiltCatalogCache(state / f"zabbix-catalog-{key}.arrow", ttl))

    # -- planning -----------------------------------------------------------------------------
    def _plans(self, start_s: int, end_s: int) -> Iterator[tuple[int, str, Span, list[int]]]:
        """(history/trend table's value type, resolution, span, itemids) per request plan."""
        raw_spans: dict[Span, list[tuple[int, list[int]]]] = {}
        for (value_type, cutoff), ids in self._groups().items():
            for resolution, span in plan_spans(start_s, end_s, cutoff, value_type in NUMERIC_TYPES, self.use_trends):
                minutes = max(1, math.ceil(span.seconds / 60))
                per_call = max(1, min(self.item_batch, self.row_budget // 2 // minutes))
                if resolution == HOURLY:  # one row per item-hour: size item batches to the budget
                    hours = max(1, math.ceil(span.seconds / 3600))
                    per_call = max(1, min(self.item_batch, self.row_budget // hours))
                for chunk in chunks(sorted(ids), per_call):
                    yield value_type, resolution, span, chunk
                if resolution == RAW:
                    raw_spans.setdefault(span, []).append((value_type, ids))
        # History under an earlier value type: almost always empty, so one countOutput per table
        # and per earlier_type_batch items settles it (~25 calls at 100,000 items in one retention
        # group); fetch_under_budget splits the rare non-empty ones.
        yield from self._earlier_plans(raw_spans, self.earlier_type_batch)

    # -- requests -----------------------------------------------------------------------------
    def _history_count(self, value_type: int):
        def count(span: Span, ids: Sequence[int]) -> int:
            return int(self.call("history.get", {"history": value_type, "itemids": list(ids), "countOutput": True,
                                                 "time_from": span.lo, "time_till": span.hi}))
        return count

    def _count_rows(self, value_type: int, span: Span, itemids: list[int]) -> int:
        count = self._history_count(value_type)
        return sum(count(span, chunk) for chunk in chunks(sorted(itemids), self.earlier_type_batch))

    def _history_fetch(self, value_type: int):
        output = ["itemid", "clock", "ns", "value"]
        if value_type == LOG:
            output += [LOG_SOURCE_COLUMNS[f] for f in LOG_FIELDS]

        def fetch(span: Span, ids: Sequence[int], limit: int | None) -> list:
            params = {"history": value_type, "itemids": list(ids), "output": output,
                      "time_from": span.lo, "time_till": span.hi}
            if limit:
                params["limit"] = limit
            started = time.monotonic()
            rows = self.call("history.get", params)
            log.debug("history.get type %d items %d [%d, %d]: %d rows in %.2fs", value_type, len(ids),
                      span.lo, span.hi, len(rows), time.monotonic() - started)
            return rows
        return fetch

    def _trend_count(self, span: Span, ids: Sequence[int]) -> int:
        # At most one row per item-hour: an upper bound is enough to size the requests.
        return len(ids) * math.ceil(span.seconds / 3600) if span.seconds > 0 else 0

    def _trend_fetch(self, span: Span, ids: Sequence[int], limit: int | None) -> list:
        params = {"itemids": list(ids), "time_from": span.lo, "time_till": span.hi,
                  "output": ["itemid", "clock", "num", "value_min", "value_avg", "value_max"]}
        if limit:
            params["limit"] = limit
        return self.call("trend.get", params)

    def _fetch_all(self, value_type: int, resolution: str, span: Span, ids: list[int]) -> Iterator[list]:
        if resolution == RAW:
            count, fetch = self._history_count(value_type), self._history_fetch(value_type)
        else:
            count, fetch = self._trend_count, self._trend_fetch
        yield from fetch_under_budget(span, ids, self.row_budget, count, fetch, self.stats,
                                      estimate=_one_per_minute if resolution == RAW else None)

    def _fetched(self, plans: Iterator) -> Iterator[tuple[int, str, list]]:
        """(value type, resolution, rows) of every request the plans need. With `parallel` > 1 that
        many threads each take the next plan and fetch it request by request: the frontend (PHP, one
        process per request) and the database work on one request while this process decodes the
        JSON of another. Results come in completion order; a bounded queue keeps at most a few
        answers (each under the row budget) in memory."""
        if self.parallel <= 1:
            for value_type, resolution, span, ids in plans:
                for rows in self._fetch_all(value_type, resolution, span, ids):
                    yield value_type, resolution, rows
            return
        results: queue.Queue = queue.Queue(maxsize=self.parallel * 2)
        take, stop = threading.Lock(), threading.Event()
        done = object()

        def put(item) -> None:
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def work() -> None:
            try:
                while not stop.is_set():
                    with take:
                        plan = next(plans, None)
                    if plan is None:
                        break
                    value_type, resolution, span, ids = plan
                    for rows in self._fetch_all(value_type, resolution, span, ids):
                        put((value_type, resolution, rows))
                        if stop.is_set():
                            return
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put(exc)
            finally:
                put(done)

        workers = [threading.Thread(target=work, name=f"zabbix-api-{i}", daemon=True) for i in range(self.parallel)]
        for worker in workers:
            worker.start()
        try:
            running = len(workers)
            while running:
                item = results.get()
                if item is done:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)

    # -- PointSource --------------------------------------------------------------------------
    def extract(self, window, run_id: str, quarantine) -> Iterator:
        catalog, _ = self.catalog()
        start_s, end_s = self._seconds(window)
        window_ns = (window.start_ns, window.end_ns)
        on_bad = self._on_bad(quarantine)

        def batches():
            for value_type, resolution, rows in self._fetched(iter(self._plans(start_s, end_s))):
                if not rows:
                    continue
                cols = {k: [r[k] for r in rows] for k in rows[0]}
                if resolution == RAW:
                    log = ({f: cols.get(LOG_SOURCE_COLUMNS[f]) for f in LOG_FIELDS} if value_type == LOG
                           else None)
                    yield history_batch(catalog, run_id, value_type, cols["itemid"], cols["clock"], cols["ns"],
                                        cols["value"], window_ns, on_bad, log)
                else:
                    yield trend_batch(catalog, run_id, cols["itemid"], cols["clock"], cols["num"],
                                      cols["value_min"], cols["value_avg"], cols["value_max"], window_ns,
                                      value_type)

        yield from rebatch(batches(), self.max_batch_rows)

    def count(self, window, bucket: dt.timedelta) -> dict[dt.datetime, int]:
        """history.get countOutput per bucket (raw hours) and trend rows per bucket (trend hours)."""
        starts = bucket_starts(window, bucket)
        counts = {s: 0 for s in starts}
        step = int(bucket.total_seconds())
        start_s, end_s = self._seconds(window)
        for value_type, resolution, span, ids in self._plans(start_s, end_s):
            if resolution == RAW:
                count = self._history_count(value_type)
                if count(span, ids) == 0:  # one call settles an empty span instead of one per bucket
                    continue
                for b in starts:
                    lo = max(int(b.timestamp()), span.lo)
                    hi = min(int(b.timestamp()) + step - 1, span.hi)
                    if lo <= hi:
                        counts[b] += count(Span(lo, hi), ids)
            else:
                for rows in fetch_under_budget(span, ids, self.row_budget, self._trend_count, self._trend_fetch,
                                               self.stats):
                    for r in rows:
                        b = bucket_start(int(r["clock"]), bucket)
                        if b in counts:
                            counts[b] += 1
        return counts


def _one_per_minute(span: Span, ids: Sequence[int]) -> int:
    """The rows a history request is expected to return at the design interval (1 minute)."""
    return len(ids) * max(1, math.ceil(span.seconds / 60))


def _redact(exc: Exception, settings: Settings) -> str:
    """An error text without the password or token, even if the library echoed the request body."""
    text = str(exc)
    for secret in (settings.zabbix_password, settings.zabbix_token):
        if secret:
            text = text.replace(secret.reveal(), "***")
    return text[:500]
