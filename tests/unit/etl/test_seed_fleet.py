"""Fleet planning from schemas/seed_fleet.json (pure: no Zabbix involved)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from etl.errors import ConfigError
from etl.seed import fleet as f


def test_default_fleet_has_five_groups_and_twenty_one_items_per_host():
    fleet = f.load_fleet()
    assert [g["name"] for g in fleet["groups"]] == ["trading", "web", "db", "mail", "office"]
    planned = f.plan_hosts(fleet, 50)
    assert len(planned) == 50
    assert {len(h["items"]) for h in planned} == {21}
    # Every host has the availability extract's check item (ICMP ping, 0/1).
    assert all(any(i["key"] == "icmpping" and i["value_type"] == 3 for i in h["items"]) for h in planned)
    assert len({h["host"] for h in planned}) == 50 and len({h["name"] for h in planned}) == 50
    assert sum(h["group"] == "trading" for h in planned) == 15
    assert any("交易服务器" in h["name"] for h in planned)
    value_types = {int(i["value_type"]) for h in planned for i in h["items"]}
    assert value_types == {0, 1, 2, 3, 4}
    assert all(i["history"] == "90d" and i["trends"] == "365d" for i in planned[0]["items"])


def test_host_counts_use_largest_remainder():
    assert f.host_counts([0.3, 0.2, 0.2, 0.1, 0.2], 3) == [1, 1, 1, 0, 0]
    assert f.host_counts([0.3, 0.2, 0.2, 0.1, 0.2], 7) == [2, 2, 1, 1, 1]
    assert sum(f.host_counts([0.3, 0.2, 0.2, 0.1, 0.2], 123)) == 123


def test_prefix_goes_on_technical_and_visible_names():
    planned = f.plan_hosts(f.load_fleet(), 2, prefix="t1-")
    assert [(h["host"], h["name"]) for h in planned] == [("t1-trading-01", "t1-交易服务器-01"), ("t1-web-01", "t1-web-01")]
    with pytest.raises(ConfigError):
        f.plan_hosts(f.load_fleet(), 0)


def test_seed_window_rounds_now_down_to_the_minute_and_reads_iso():
    start, end = f.seed_window(2)
    assert end % 60 == 0 and end - start == 2 * 86400
    end_s = int(dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.timezone.utc).timestamp())
    assert f.seed_window(1, "2026-11-25T08:00Z") == (end_s - 86400, end_s)
    assert f.seed_window(0.5, "2026-11-25T16:00+08:00") == (end_s - 43200, end_s)
    with pytest.raises(ConfigError):
        f.seed_window(0)


def test_host_rows_are_deterministic_and_complete():
    host = f.plan_hosts(f.load_fleet(), 1, prefix="u-")[0]
    itemids = {spec["key"]: n for n, spec in enumerate(host["items"], start=1)}
    start, end = 1764000000, 1764000000 + 6 * 3600
    first = f.host_rows(host, itemids, start, end, seed=5)
    again = f.host_rows(host, itemids, start, end, seed=5)
    other = f.host_rows(host, itemids, start, end, seed=6)
    table = f.to_arrow(0, first[0])
    assert table.equals(f.to_arrow(0, again[0]))
    assert not table.equals(f.to_arrow(0, other[0]))
    minute_items = sum(1 for s in host["items"] if int(s["value_type"]) == 0 and s["interval"] == 60)
    assert table.num_rows == minute_items * 360
    for value_type, parts in first.items():
        t = f.to_arrow(value_type, parts)
        clocks = t.column("clock").to_numpy()
        assert clocks.min() >= start and clocks.max() < end
        assert np.all(t.column("ns").to_numpy() > 0)
    log = f.to_arrow(2, first[2])
    assert log.column_names == ["itemid", "clock", "ns", "value", "timestamp", "source", "severity", "logeventid"]


def test_unknown_generator_kind_is_a_config_error(tmp_path):
    fleet = f.load_fleet()
    fleet["items"][0]["generator"]["kind"] = "sine"
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    with pytest.raises(ConfigError, match="sine"):
        f.load_fleet(path)


def test_items_per_host_cuts_or_extends_with_variants_in_a_realistic_mix():
    fleet = f.load_fleet()
    fifty = f.plan_hosts(fleet, 10, items_per_host=50)
    assert {len(h["items"]) for h in fifty} == {50}
    for host in fifty:
        keys = [i["key"] for i in host["items"]]
        assert len(set(keys)) == 50  # variants fill {n}: no duplicate keys on a host
    types = [int(i["value_type"]) for i in fifty[0]["items"]]
    assert set(types) == {0, 1, 2, 3, 4}
    assert sum(t in (0, 3) for t in types) / len(types) >= 0.8  # mostly numeric, like a Linux template
    variant = next(i for i in fifty[0]["items"] if i["key"] == "net.if.in[eth1]")
    assert variant["value_type"] == 3 and variant["generator"]["kind"] == "counter"
    assert [len(h["items"]) for h in f.plan_hosts(fleet, 2, items_per_host=5)] == [5, 5]
    assert f.plan_hosts(fleet, 1)[0]["items"] == f.plan_hosts(fleet, 1, items_per_host=None)[0]["items"]
    with pytest.raises(ConfigError):
        f.plan_hosts(fleet, 1, items_per_host=0)


def test_variant_rows_are_generated_like_their_base_item():
    host = f.plan_hosts(f.load_fleet(), 1, prefix="v-", items_per_host=50)[0]
    itemids = {spec["key"]: n for n, spec in enumerate(host["items"], start=1)}
    rows = f.host_rows(host, itemids, 1764000000, 1764000000 + 3600, seed=1)
    per_item = {int(c["itemid"][0]): len(c["clock"]) for parts in rows.values() for c in parts}
    assert len(per_item) == 50
    assert per_item[itemids["system.cpu.util[1,user]"]] == 60
