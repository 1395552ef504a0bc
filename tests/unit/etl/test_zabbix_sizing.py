"""Zabbix server cache sizes follow the fleet size (MONETL_ZABBIX_FLEET_ITEMS)."""

from __future__ import annotations

import dataclasses

from etl.config import Settings
from etl.services.zabbix import Zabbix, server_cache_sizes


def mb(text: str) -> int:
    assert text.endswith("M")
    return int(text[:-1])


def test_caches_grow_with_the_fleet_and_respect_zabbix_limits():
    small, design, huge = server_cache_sizes(1_000), server_cache_sizes(100_000), server_cache_sizes(10_000_000)
    for key in small:
        assert mb(small[key]) <= mb(design[key]) <= mb(huge[key])
    # the stock 32M died at 40,000 items; the design fleet gets a multiple of it
    assert mb(server_cache_sizes(40_000)["CacheSize"]) > 64 and mb(design["CacheSize"]) >= 256
    for key in ("HistoryCacheSize", "HistoryIndexCacheSize", "TrendCacheSize"):
        assert mb(huge[key]) <= 2048  # Zabbix 6.0 maximum for these


def test_server_config_carries_the_sizes(tmp_path):
    settings = dataclasses.replace(Settings(home=tmp_path), zabbix_fleet_items=40_000)
    text = Zabbix(settings).server_config()
    for key, value in server_cache_sizes(40_000).items():
        assert f"\n{key}={value}\n" in text
