"""The DB mode's finished catalog kept in an Arrow file: the same catalog and retention come back
while the fingerprint is unchanged, and nothing comes back after a change, past the ttl, or from a
damaged or foreign file."""

from __future__ import annotations

from etl.sources.zabbix_meta import BuiltCatalogCache, catalog_from_db, digest


def _catalog(value_type=0, history="90d"):
    items = [{"itemid": 10 + i, "hostid": 1 + i % 2, "host": f"h{1 + i % 2}", "host_name": f"主机 {1 + i % 2}",
              "key_": f"k{i}", "name": f"item {i}", "units": "B" if i % 2 else "", "value_type": value_type,
              "history": history if i % 3 else "0", "trends": "365d"} for i in range(6)]
    groups = [{"hostid": 1, "name": "b"}, {"hostid": 1, "name": "a"}, {"hostid": 2, "name": "a"}]
    item_tags = [{"itemid": 11, "tag": "z", "value": "1"}, {"itemid": 11, "tag": "a", "value": ""}]
    host_tags = [{"hostid": 2, "tag": "site", "value": "dc1"}]
    return catalog_from_db(items, groups, item_tags, host_tags)


def test_a_saved_catalog_loads_equal_while_the_fingerprint_holds(tmp_path):
    catalog, retention = _catalog()
    cache = BuiltCatalogCache(tmp_path / "c.arrow", ttl=60)
    fingerprint = [6, 15, "123", digest(["hosts"], None)]
    cache.save(fingerprint, catalog, retention)
    loaded, loaded_retention = cache.load(fingerprint)
    assert loaded.table.equals(catalog.table)
    assert loaded_retention == retention and loaded[11] == catalog[11]
    # item tags then the host's, as built
    assert [tuple(t) for t in loaded.items[11].tags] == [("a", ""), ("z", "1"), ("site", "dc1")]
    assert cache.load([6, 15, "124", fingerprint[3]]) is None      # a value type changed
    assert cache.load([7, 16, "123", fingerprint[3]]) is None      # an item was added
    assert cache.load([6, 15, "123", digest(["renamed host"], None)]) is None


def test_the_cache_expires_and_ignores_damaged_files(tmp_path):
    now = [1000.0]
    catalog, retention = _catalog()
    cache = BuiltCatalogCache(tmp_path / "c.arrow", ttl=60, now=lambda: now[0])
    cache.save([1], catalog, retention)
    now[0] += 59
    assert cache.load([1]) is not None
    now[0] += 2
    assert cache.load([1]) is None
    (tmp_path / "c.arrow").write_bytes(b"not arrow at all")
    assert cache.load([1]) is None
    assert BuiltCatalogCache(tmp_path / "missing.arrow", ttl=60).load([1]) is None
