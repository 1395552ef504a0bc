"""Demo fleet seeder for the local Zabbix (seed_fleet, run_demo in etl.seed.fleet), and reusable helpers for tests that need their own
Zabbix hosts, items and values.

Helpers (see their docstrings): zabbix_api, ensure_groups, ensure_hosts/ensure_host,
ensure_items/ensure_item, reload_config_cache, push_values, delete_hosts (etl.seed.zabbix_objects);
writer_connection, insert_history, delete_history, rebuild_trends (etl.seed.history_db)."""

from etl.seed.fleet import run_demo, seed_fleet
from etl.seed.history_db import delete_history, insert_history, rebuild_trends, writer_connection
from etl.seed.zabbix_objects import (
    delete_hosts,
    ensure_groups,
    ensure_host,
    ensure_hosts,
    ensure_item,
    ensure_items,
    push_values,
    reload_config_cache,
    zabbix_api,
)

__all__ = ["run_demo", "seed_fleet", "delete_history", "delete_hosts", "ensure_groups", "ensure_host", "ensure_hosts", "ensure_item",
           "ensure_items", "insert_history", "push_values", "rebuild_trends", "reload_config_cache",
           "writer_connection", "zabbix_api"]
