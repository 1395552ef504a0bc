"""Small, idempotent helpers over the Zabbix 6.0 JSON-RPC API (zabbix_utils) and the server's
trapper: for the demo seeder and for tests that need their own hosts, items and pushed values.

Every ensure_* looks the object up by its natural key (group name, host name, host + item key)
and creates or updates it, so calling it twice never makes a second object."""

from __future__ import annotations

import time
from typing import Iterable

from etl.config import Settings
from etl.errors import SourceError

# Zabbix value_type codes (the same codes the point contract uses).
FLOAT, CHAR, LOG, UINT, TEXT = 0, 1, 2, 3, 4
ITEM_TYPE_TRAPPER = 2
# API call sizes that stay well under the frontend's 128M PHP memory limit.
HOST_BATCH = 500
ITEM_GET_HOSTS = 100


def zabbix_api(settings: Settings):
    """A logged-in zabbix_utils ZabbixAPI (token if configured, else user/password)."""
    from zabbix_utils import ZabbixAPI

    try:
        if settings.zabbix_token:
            return ZabbixAPI(url=settings.zabbix_url, token=settings.zabbix_token.reveal(), timeout=120)
        return ZabbixAPI(url=settings.zabbix_url, user=settings.zabbix_user,
                         password=settings.zabbix_password.reveal(), timeout=120)
    except Exception as exc:  # zabbix_utils raises its own types plus OSError; the message is safe
        raise SourceError(f"Zabbix API at {settings.zabbix_url}: login as {settings.zabbix_user} failed: {exc}") from exc


def _tags(tags: dict[str, str] | Iterable[tuple[str, str]] | None) -> list[dict]:
    items = tags.items() if isinstance(tags, dict) else (tags or [])
    return [{"tag": k, "value": v} for k, v in items]


def ensure_groups(api, names: Iterable[str]) -> dict[str, str]:
    """Host groups by name -> groupid, creating the missing ones."""
    names = list(dict.fromkeys(names))
    found = {g["name"]: g["groupid"] for g in api.hostgroup.get(filter={"name": names}, output=["groupid", "name"])}
    missing = [n for n in names if n not in found]
    if missing:
        created = api.hostgroup.create([{"name": n} for n in missing])["groupids"]
        found.update(zip(missing, created))
    return found


def _same_tags(a: list[dict], b: list[dict]) -> bool:
    return sorted((t["tag"], t["value"]) for t in a) == sorted((t["tag"], t["value"]) for t in b)


def ensure_hosts(api, hosts: list[dict]) -> dict[str, str]:
    """Hosts by technical name -> hostid. Each spec: host, name (visible), groups (names), tags
    (dict). Missing hosts are created in one call; existing ones whose visible name, groups or
    tags differ from the spec are updated."""
    groupids = ensure_groups(api, [g for h in hosts for g in h["groups"]])
    current = {h["host"]: h for h in api.host.get(filter={"host": [h["host"] for h in hosts]},
                                                  output=["hostid", "host", "name"], selectGroups=["groupid"],
                                                  selectTags=["tag", "value"])}

    def body(spec: dict) -> dict:
        return {"host": spec["host"], "name": spec.get("name") or spec["host"],
                "groups": [{"groupid": groupids[g]} for g in spec["groups"]], "tags": _tags(spec.get("tags"))}

    ids = {name: h["hostid"] for name, h in current.items()}
    new = [body(h) for h in hosts if h["host"] not in current]
    for first in range(0, len(new), HOST_BATCH):
        chunk = new[first:first + HOST_BATCH]
        created = api.host.create(chunk)["hostids"]
        ids.update(zip([h["host"] for h in chunk], created))
    for spec in hosts:
        have = current.get(spec["host"])
        if have is None:
            continue
        want = body(spec)
        if (want["name"] != have["name"] or not _same_tags(want["tags"], have["tags"])
                or sorted(g["groupid"] for g in want["groups"]) != sorted(g["groupid"] for g in have["groups"])):
            api.host.update({"hostid": have["hostid"], "name": want["name"], "groups": want["groups"],
                             "tags": want["tags"]})
    return ids


def ensure_host(api, host: str, groups: list[str], name: str | None = None,
                tags: dict[str, str] | None = None) -> str:
    """One host (see ensure_hosts); returns its hostid."""
    return ensure_hosts(api, [{"host": host, "name": name, "groups": groups, "tags": tags}])[host]


def item_body(spec: dict) -> dict:
    """API fields of a trapper item from a spec: key, name, value_type, units, history, trends, tags."""
    body = {"key_": spec["key"], "name": spec.get("name") or spec["key"], "type": ITEM_TYPE_TRAPPER,
            "value_type": int(spec["value_type"]), "history": spec.get("history", "90d"),
            "tags": _tags(spec.get("tags"))}
    if int(spec["value_type"]) in (FLOAT, UINT):
        body["units"] = spec.get("units", "")
        body["trends"] = spec.get("trends", "365d")
    return body


def ensure_items(api, hostid: str | None, items: list[dict], batch: int = 1000) -> dict[tuple[str, str], str]:
    """Trapper items -> {(hostid, key): itemid}. Each spec has key, name, value_type, units, tags
    and (when hostid is None) its own "hostid". Missing items are created in batches; items whose
    definition drifted are updated, so a re-run converges on the spec."""
    specs = [{**s, "hostid": s.get("hostid", hostid)} for s in items]
    hostids = sorted({s["hostid"] for s in specs})
    current = {}
    # Paged by hosts: one item.get of a 100,000-item fleet with tags exceeds PHP's 128M.
    for first in range(0, len(hostids), ITEM_GET_HOSTS):
        for found in api.item.get(hostids=hostids[first:first + ITEM_GET_HOSTS],
                                  output=["itemid", "hostid", "key_", "name", "value_type", "units",
                                          "history", "trends", "type"], selectTags=["tag", "value"]):
            current[(found["hostid"], found["key_"])] = found
    to_create, to_update, ids = [], [], {}
    for spec in specs:
        want = {**item_body(spec), "hostid": spec["hostid"]}
        have = current.get((spec["hostid"], spec["key"]))
        if have is None:
            to_create.append(want)
            continue
        ids[(spec["hostid"], spec["key"])] = have["itemid"]
        drift = {k: v for k, v in want.items() if k not in ("hostid", "key_") and
                 (not _same_tags(v, have["tags"]) if k == "tags" else str(v) != str(have.get(k)))}
        if drift:
            to_update.append({"itemid": have["itemid"], **drift})
    for start in range(0, len(to_create), batch):
        chunk = to_create[start:start + batch]
        created = api.item.create(chunk)["itemids"]
        ids.update({(b["hostid"], b["key_"]): i for b, i in zip(chunk, created)})
    for start in range(0, len(to_update), batch):
        api.item.update(to_update[start:start + batch])
    return ids


def ensure_item(api, hostid: str, key: str, value_type: int, name: str | None = None, units: str = "",
                tags: dict[str, str] | None = None, history: str = "90d", trends: str = "365d") -> str:
    """One trapper item (see ensure_items); returns its itemid."""
    spec = {"key": key, "name": name, "value_type": value_type, "units": units, "tags": tags,
            "history": history, "trends": trends}
    return ensure_items(api, hostid, [spec])[(hostid, key)]


def reload_config_cache(settings: Settings) -> None:
    """Make the running server see new hosts/items now, not after CacheUpdateFrequency: values sent
    for items it does not know yet are answered "failed" and dropped."""
    from etl.services.zabbix import Zabbix

    Zabbix(settings).runtime_control("config_cache_reload")
    # The reload is asynchronous: the command returns when it was forwarded, not when it is done.
    time.sleep(1.0)


def push_values(settings: Settings, values: Iterable[tuple], retries: int = 10) -> dict:
    """Send (host, key, value, clock, ns) tuples to the server's trapper. Items created a moment ago
    may still be unknown to the server, so a batch with failures is retried (after a config cache
    reload) until all are processed; returns {"processed", "failed", "total"} of the last attempt."""
    from zabbix_utils import ItemValue, Sender

    batch = [ItemValue(host, key, str(value), int(clock), int(ns)) for host, key, value, clock, ns in values]
    sender = Sender(server="127.0.0.1", port=settings.zabbix_server_port, timeout=30)
    result = {}
    for attempt in range(retries):
        response = sender.send(batch)
        result = {"processed": response.processed, "failed": response.failed, "total": response.total}
        if response.failed == 0:
            return result
        # Values already processed must not be sent again (that would duplicate them).
        if response.processed:
            raise SourceError(f"zabbix trapper accepted only part of a batch ({result}); values of items "
                              "the server does not know were dropped: reload the config cache before sending")
        reload_config_cache(settings)
    raise SourceError(f"zabbix trapper rejected values after {retries} attempts: {result}")


def delete_hosts(api, settings: Settings, hosts: Iterable[str]) -> int:
    """Remove hosts and their history/trends rows (the housekeeper is off, so Zabbix would leave the
    rows behind). Returns how many hosts were deleted."""
    from etl.seed.history_db import delete_item_data, writer_connection

    found = api.host.get(filter={"host": list(hosts)}, output=["hostid"])
    if not found:
        return 0
    hostids = [h["hostid"] for h in found]
    for first in range(0, len(hostids), ITEM_GET_HOSTS):
        chunk = hostids[first:first + ITEM_GET_HOSTS]
        itemids = [int(i["itemid"]) for i in api.item.get(hostids=chunk, output=["itemid"])]
        with writer_connection(settings) as conn:
            delete_item_data(conn, itemids)
        api.host.delete(*chunk)
    return len(hostids)
