"""The API catalog at fleet scale: item.get paged by hosts under the memory wall (split on HTTP 500),
and reused from the state file while the scope's fingerprint (count, top itemid) is unchanged."""

from __future__ import annotations

import dataclasses
import json
from urllib.error import HTTPError

import pytest
from zabbix_utils.exceptions import ProcessingError

from etl.config import Settings
from etl.sources.zabbix_api import ZabbixApiSource
from etl.sources.zabbix_meta import CatalogCache


class FleetApi:
    """host.get / item.get of `hosts` hosts x `per_host` items; item.get returning more than
    `wall` items fails as the PHP memory limit does (HTTP 500, as zabbix_utils raises it)."""

    def __init__(self, hosts=40, per_host=25, wall=10**9):
        self.version = type("V", (), {"major": 6.0})()
        self.wall = wall
        self.hosts = [{"hostid": str(h), "host": f"h{h}", "name": f"h{h}", "tags": [], "groups": [{"name": "g"}]}
                      for h in range(1, hosts + 1)]
        self.items = [{"itemid": str(h * 1000 + i), "hostid": str(h), "key_": f"k{i}", "name": f"k{i}", "units": "",
                       "value_type": "0", "history": "90d", "trends": "365d", "tags": [{"tag": "t", "value": "v"}]}
                      for h in range(1, hosts + 1) for i in range(per_host)]
        self.item_calls: list[dict] = []

    def send_api_request(self, method, params):
        if method == "host.get":
            return {"result": self.hosts}
        if method == "housekeeping.get":
            return {"result": {"hk_history_global": "0", "hk_trends_global": "0"}}
        assert method == "item.get", method
        self.item_calls.append(params)
        found = [i for i in self.items if i["hostid"] in set(params["hostids"])]
        if params.get("countOutput"):
            return {"result": str(len(found))}
        if params.get("sortfield") == "itemid":
            found = sorted(found, key=lambda i: -int(i["itemid"]))[:params["limit"]]
            return {"result": [{"itemid": i["itemid"]} for i in found]}
        if len(found) > self.wall:
            try:
                raise HTTPError("http://x", 500, "Internal Server Error", {}, None)
            except HTTPError:
                raise ProcessingError("Unable to connect to http://x:", "HTTP Error 500") from None
        return {"result": found}


def full_pages(api):
    return [c for c in api.item_calls if not c.get("countOutput") and "sortfield" not in c]


def test_catalog_pages_by_hosts_and_splits_on_the_wall(tmp_path):
    api = FleetApi(hosts=40, per_host=25, wall=120)
    src = ZabbixApiSource(Settings(home=tmp_path), api=api, catalog_page=400)
    catalog, _ = src.catalog()
    assert len(catalog) == 1000
    pages = full_pages(api)
    # 400 items a page = 16 hosts; 16 x 25 = 400 > wall 120 -> halved until 4 hosts (100 items)
    assert max(len(p["hostids"]) for p in pages if len(p["hostids"]) * 25 <= 120) * 25 <= 120
    assert src.stats["too_big"] >= 1
    assert sorted(h for p in pages if len(p["hostids"]) * 25 <= 120 for h in p["hostids"]) == \
        sorted(h["hostid"] for h in api.hosts)


def test_a_single_host_over_the_wall_is_a_clear_error(tmp_path):
    from etl.errors import SourceError

    src = ZabbixApiSource(Settings(home=tmp_path), api=FleetApi(hosts=2, per_host=50, wall=10), catalog_page=400)
    with pytest.raises(SourceError, match="alone exceeds"):
        src.catalog()


def test_cached_catalog_is_reused_until_an_item_appears(tmp_path):
    settings = Settings(home=tmp_path)
    api = FleetApi(hosts=5, per_host=10)
    first = ZabbixApiSource(settings, api=api, catalog_cache=True)
    assert len(first.catalog()[0]) == 50 and first.stats["catalog_cached"] == 0
    assert len(full_pages(api)) == 1

    api.item_calls.clear()
    second = ZabbixApiSource(settings, api=api, catalog_cache=True)
    catalog, _ = second.catalog()
    assert second.stats["catalog_cached"] == 1 and not full_pages(api)
    assert catalog.table.equals(first.catalog()[0].table)

    # a new item (higher itemid, count + 1) forces a reload that sees it
    api.items.append({**api.items[0], "itemid": "999999", "key_": "new"})
    third = ZabbixApiSource(settings, api=api, catalog_cache=True)
    assert 999999 in third.catalog()[0] and third.stats["catalog_cached"] == 0


def test_cache_expires_and_ignores_damaged_files(tmp_path):
    clock = [1000.0]
    cache = CatalogCache(tmp_path / "c.json", ttl=60, now=lambda: clock[0])
    cache.save((2, 7), [{"itemid": "7"}])
    assert cache.load((2, 7)) == [{"itemid": "7"}]
    assert cache.load((3, 7)) is None
    clock[0] += 61
    assert cache.load((2, 7)) is None
    (tmp_path / "c.json").write_text("{not json")
    assert cache.load((2, 7)) is None
    assert json.loads(json.dumps(CatalogCache.key("u", [1]))) == CatalogCache.key("u", [1])


def test_ttl_zero_disables_the_cache(tmp_path):
    settings = dataclasses.replace(Settings(home=tmp_path), zabbix_catalog_ttl=0)
    api = FleetApi(hosts=2, per_host=3)
    ZabbixApiSource(settings, api=api, catalog_cache=True).catalog()
    ZabbixApiSource(settings, api=api, catalog_cache=True).catalog()
    assert len(full_pages(api)) == 2
    assert not (tmp_path / "state").exists()


def test_the_built_catalog_is_reused_and_a_host_change_rebuilds_it_from_the_cached_items(tmp_path, monkeypatch):
    import etl.sources.zabbix_api as zabbix_api

    settings = Settings(home=tmp_path)
    api = FleetApi(hosts=5, per_host=10)
    first = ZabbixApiSource(settings, api=api, catalog_cache=True)
    built_first = first.catalog()[0]
    builds = []
    real_build = zabbix_api.catalog_from_api
    monkeypatch.setattr(zabbix_api, "catalog_from_api", lambda *a, **k: builds.append(1) or real_build(*a, **k))

    # same items, same hosts: the finished catalog comes back, nothing is read or built
    api.item_calls.clear()
    second = ZabbixApiSource(settings, api=api, catalog_cache=True)
    catalog, retention = second.catalog()
    assert second.stats["catalog_built_cached"] == 1 and not full_pages(api) and not builds
    assert catalog.table.equals(built_first.table) and retention == first.catalog()[1]

    # a renamed host: items still from their cache, the catalog rebuilt with the new name
    api.hosts[0] = {**api.hosts[0], "host": "renamed"}
    api.item_calls.clear()
    third = ZabbixApiSource(settings, api=api, catalog_cache=True)
    catalog, _ = third.catalog()
    assert third.stats["catalog_cached"] == 1 and third.stats["catalog_built_cached"] == 0
    assert not full_pages(api) and builds == [1]
    assert {catalog.items[int(i["itemid"])].host for i in api.items if i["hostid"] == "1"} == {"renamed"}

    # and the rebuilt one is what the next run reuses
    fourth = ZabbixApiSource(settings, api=api, catalog_cache=True)
    assert fourth.catalog()[0].table.equals(catalog.table) and fourth.stats["catalog_built_cached"] == 1
