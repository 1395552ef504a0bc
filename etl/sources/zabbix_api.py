"""Zabbix through its JSON-RPC API (zabbix_utils): metadata once per source object, then history
per value type (history.get's `history` must equal the item's value_type, a mismatch silently returns
nothing), items in batches, time spans under a row budget (see zabbix_common.fetch_under_budget), and
trend.get for hours older than an item's history retention.

Facts this shapes around (Zabbix 6.0, measured): no paging or cursor; time_from/time_till are
inclusive (spans are inclusive second ranges, disjoint by construction); ~150k float rows hit PHP's
memory limit as HTTP 500 with an empty body, which is treated like a timeout: halve and retry.
Auth: a token or user/password; zabbix_utils puts it in the body (< 6.4) or a Bearer header."""

from __future__ import annotations

import datetime as dt
import logging
import math
import socket
import time
from typing import Iterator, Sequence
from urllib.error import HTTPError, URLError

from etl.config import Settings
from etl.errors import SourceError
from etl.schema import NUMERIC_TYPES
from etl.sources.base import HOURLY, MAX_BATCH_ROWS, RAW, ItemCatalog, bucket_start, bucket_starts, rebatch
from etl.sources.zabbix_common import Span, TooBig, chunks, fetch_under_budget, history_batch, plan_spans, trend_batch
from etl.sources.zabbix_meta import CatalogCache, Retention, catalog_from_api, host_groups_selector
from etl.sources.zabbix_source import ZabbixSource

log = logging.getLogger(__name__)
# zabbix_utils logs whole request bodies (with the auth token) at DEBUG: keep it out of our logs.
logging.getLogger("zabbix_utils").setLevel(logging.INFO)

DEFAULT_ROW_BUDGET = 50_000
DEFAULT_ITEM_BATCH = 500
# Items per catalog item.get (with tags): ~10 MB of PHP memory, far under the stock 128M.
DEFAULT_CATALOG_PAGE = 5_000
_ITEM_OUTPUT = ["itemid", "hostid", "key_", "name", "units", "value_type", "history", "trends"]


class ZabbixApiSource(ZabbixSource):
    mode = "api"

    def __init__(self, settings: Settings, hosts: list[str] | None = None, itemids: list[int] | None = None,
                 max_batch_rows: int = MAX_BATCH_ROWS, row_budget: int = DEFAULT_ROW_BUDGET,
                 item_batch: int = DEFAULT_ITEM_BATCH, use_trends: str = "auto", timeout: int = 120,
                 api=None, now: dt.datetime | None = None, catalog_page: int = DEFAULT_CATALOG_PAGE,
                 catalog_cache: bool | None = None):
        super().__init__(settings, hosts, itemids, max_batch_rows, use_trends, now)
        self.row_budget = row_budget
        self.item_batch = item_batch
        self.timeout = timeout
        self._api = api
        # A caller's own API object (tests) gets no cache unless asked: its answers are its own.
        self.use_catalog_cache = api is None if catalog_cache is None else catalog_cache
        self._owns_session = False
        self.catalog_page = catalog_page
        self.catalog_seconds = 0.0
        self.requests = 0  # API calls made, for logs and tests
        # re-plans: "over_budget" (count or result above the budget), "too_big" (HTTP 500 / timeout)
        self.stats: dict[str, int] = {"over_budget": 0, "too_big": 0, "catalog_cached": 0}

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
        """One API call; size failures become TooBig (the caller splits), others SourceError."""
        from zabbix_utils.exceptions import APIRequestError, ProcessingError

        self.requests += 1
        try:
            return self.api.send_api_request(method, params)["result"]
        except ProcessingError as exc:
            # zabbix_utils flattens the cause into text; the original is still the context.
            cause = exc.__context__
            if (isinstance(cause, HTTPError) and cause.code >= 500) or isinstance(cause, ValueError) or (
                    isinstance(cause, URLError) and isinstance(cause.reason, TimeoutError)):
                raise TooBig(f"{method}: {cause}") from None
            raise SourceError(f"zabbix API {self.settings.zabbix_url}: {method} failed: {exc}") from None
        except (TimeoutError, socket.timeout) as exc:
            raise TooBig(f"{method}: timed out after {self.timeout}s") from exc
        except APIRequestError as exc:
            raise SourceError(f"zabbix API {method} refused: {_redact(exc, self.settings)}") from None
        except OSError as exc:
            raise SourceError(f"zabbix API {self.settings.zabbix_url} unreachable during {method}: {exc}") from None

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
        cache = self._catalog_cache()
        items = fingerprint = None
        if cache is not None and hostids:
            fingerprint = self._item_fingerprint(hostids)
            items = cache.load(fingerprint)
        self.stats["catalog_cached"] = int(items is not None)
        if items is None:
            items = self._items(hostids)
            if cache is not None and fingerprint is not None:
                cache.save(fingerprint, items)
        hk_history = hk_trends = None
        try:
            hk = self.call("settings.get", {"output": ["hk_history_global", "hk_history",
                                                       "hk_trends_global", "hk_trends"]})
            if str(hk.get("hk_history_global")) == "1":
                hk_history = hk.get("hk_history")
            if str(hk.get("hk_trends_global")) == "1":
                hk_trends = hk.get("hk_trends")
        except SourceError as exc:  # non-super-admin users may not read settings: item values stand
            log.info("zabbix housekeeping overrides not readable (%s); using item retention", exc)
        catalog, retention = catalog_from_api(hosts, items, groups_key, hk_history, hk_trends)
        self.catalog_seconds = time.monotonic() - started
        log.info("zabbix API catalog: %d hosts, %d items (%s) in %.1fs", len(hosts), len(catalog),
                 "cached" if self.stats["catalog_cached"] else "read", self.catalog_seconds)
        return catalog, retention

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
        half on the memory wall (HTTP 500 / timeout) like history: never one unbounded call."""
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

    def _catalog_cache(self) -> CatalogCache | None:
        """None when disabled (ttl 0, or catalog_cache off)."""
        ttl = self.settings.zabbix_catalog_ttl
        if ttl <= 0 or not self.use_catalog_cache:
            return None
        key = CatalogCache.key(self.settings.zabbix_url, self.settings.zabbix_user, sorted(self.hosts or []),
                               sorted(self.itemids or []))
        return CatalogCache(self.settings.home / "state" / f"zabbix-catalog-{key}.json", ttl)

    # -- planning -----------------------------------------------------------------------------
    def _plans(self, start_s: int, end_s: int) -> Iterator[tuple[int, str, Span, list[int]]]:
        for (value_type, cutoff), ids in self._groups().items():
            for resolution, span in plan_spans(start_s, end_s, cutoff, value_type in NUMERIC_TYPES, self.use_trends):
                per_call = self.item_batch
                if resolution == HOURLY:  # one row per item-hour: size item batches to the budget
                    hours = max(1, math.ceil(span.seconds / 3600))
                    per_call = max(1, min(self.item_batch, self.row_budget // hours))
                for chunk in chunks(sorted(ids), per_call):
                    yield value_type, resolution, span, chunk

    # -- requests -----------------------------------------------------------------------------
    def _history_count(self, value_type: int):
        def count(span: Span, ids: Sequence[int]) -> int:
            return int(self.call("history.get", {"history": value_type, "itemids": list(ids), "countOutput": True,
                                                 "time_from": span.lo, "time_till": span.hi}))
        return count

    def _history_fetch(self, value_type: int):
        def fetch(span: Span, ids: Sequence[int], limit: int | None) -> list:
            params = {"history": value_type, "itemids": list(ids), "output": ["itemid", "clock", "ns", "value"],
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
        yield from fetch_under_budget(span, ids, self.row_budget, count, fetch, self.stats)

    # -- PointSource --------------------------------------------------------------------------
    def extract(self, window, run_id: str, quarantine) -> Iterator:
        catalog, _ = self.catalog()
        start_s, end_s = self._seconds(window)
        window_ns = (window.start_ns, window.end_ns)
        on_bad = self._on_bad(quarantine)

        def batches():
            for value_type, resolution, span, ids in self._plans(start_s, end_s):
                for rows in self._fetch_all(value_type, resolution, span, ids):
                    if not rows:
                        continue
                    cols = {k: [r[k] for r in rows] for k in rows[0]}
                    if resolution == RAW:
                        yield history_batch(catalog, run_id, value_type, cols["itemid"], cols["clock"], cols["ns"],
                                            cols["value"], window_ns, on_bad)
                    else:
                        yield trend_batch(catalog, run_id, cols["itemid"], cols["clock"], cols["num"],
                                          cols["value_min"], cols["value_avg"], cols["value_max"], window_ns)

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


def _redact(exc: Exception, settings: Settings) -> str:
    """An error text without the password or token, even if the library echoed the request body."""
    text = str(exc)
    for secret in (settings.zabbix_password, settings.zabbix_token):
        if secret:
            text = text.replace(secret.reveal(), "***")
    return text[:500]
