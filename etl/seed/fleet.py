"""Seeds the demo fleet (schemas/seed_fleet.json) into the local Zabbix: groups, hosts and
trapper items through the JSON-RPC API, then D days of history straight into the database with
trends rebuilt from it. Deterministic for a given --seed; re-seeding replaces the window's rows."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from etl.config import Settings
from etl.errors import ConfigError
from etl.schema import SCHEMAS_DIR
from etl.seed import generators
from etl.seed.history_db import (
    HISTORY_TABLES,
    TRENDS_TABLES,
    delete_history,
    history_columns,
    insert_history,
    analyze_history,
    rebuild_trends,
    writer_connection,
)
from etl.seed.zabbix_objects import ensure_hosts, ensure_items, zabbix_api

FLEET_FILE = SCHEMAS_DIR / "seed_fleet.json"
DEFAULT_HOSTS = 50
DEFAULT_DAYS = 2.0
DEFAULT_SEED = 1


def load_fleet(path: Path | None = None) -> dict:
    path = path or FLEET_FILE
    try:
        fleet = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"fleet definition {path}: cannot read it: {exc}") from exc
    for spec in [*fleet["items"], *(i for items in fleet.get("group_items", {}).values() for i in items)]:
        if spec["generator"]["kind"] not in generators.KINDS:
            raise ConfigError(f"fleet definition {path}: item {spec['key']}: unknown generator kind "
                              f"{spec['generator']['kind']!r}; known: {', '.join(generators.KINDS)}")
    return fleet


def host_counts(shares: list[float], total: int) -> list[int]:
    """Split `total` hosts by shares, largest remainder first (ties: earlier group first)."""
    weights = np.asarray(shares, dtype=float)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def host_items(fleet: dict, group: str, items_per_host: int | None = None) -> list[dict]:
    """The item specs of a host in `group`: the base items plus the group's own, cut to
    items_per_host when fewer, or extended by the fleet's extra_items variants (round r fills
    {n} = r) when more. None keeps the base set."""
    items = [*fleet["items"], *fleet.get("group_items", {}).get(group, [])]
    if items_per_host is None:
        return items
    if items_per_host < 1:
        raise ConfigError(f"--items must be at least 1, got {items_per_host}")
    if items_per_host <= len(items):
        return items[:items_per_host]
    variants = fleet.get("extra_items") or []
    if not variants:
        raise ConfigError(f"--items {items_per_host}: the fleet has only {len(items)} items a host and no extra_items")
    by_key = {i["key"]: i for i in [*fleet["items"], *(i for g in fleet.get("group_items", {}).values() for i in g)]}
    out, n = list(items), 0
    while len(out) < items_per_host:
        variant = variants[n % len(variants)]
        rnd = n // len(variants) + 1
        base = by_key[variant["like"]]
        out.append({**base, **{k: v for k, v in variant.items() if k != "like"},
                    "key": variant["key"].format(n=rnd), "name": variant.get("name", base["name"]).format(n=rnd)})
        n += 1
    return out


def plan_hosts(fleet: dict, hosts: int, prefix: str = "", items_per_host: int | None = None) -> list[dict]:
    """Host specs: host (technical name), name (visible, may be Chinese), group, groups, tags,
    market_weight and the item specs. A prefix keeps test fleets apart from the demo fleet; it
    goes on the visible name too because Zabbix wants those unique as well."""
    if hosts < 1:
        raise ConfigError(f"--hosts must be at least 1, got {hosts}")
    planned = []
    counts = host_counts([g["share"] for g in fleet["groups"]], hosts)
    # Test fleets (a prefix) get no incidents: their row counts stay exact.
    incidents = {} if prefix else fleet.get("incidents", {})
    for group, count in zip(fleet["groups"], counts):
        items = host_items(fleet, group["name"], items_per_host)
        for n in range(1, count + 1):
            own_items = _with_incidents(items, group["host"].format(n=n), incidents)
            planned.append({
                "host": prefix + group["host"].format(n=n),
                "name": prefix + group["visible"].format(n=n),
                "group": group["name"],
                "groups": [group["name"]],
                "tags": {**fleet.get("host_tags", {}), **group.get("tags", {})},
                "market_weight": float(group.get("market_weight", 1.0)),
                "items": [{**i, "history": fleet.get("history", "90d"), "trends": fleet.get("trends", "365d")}
                          for i in own_items],
            })
            outage = incidents.get("outage", {})
            if group["host"].format(n=n) in outage.get("hosts", []):
                planned[-1]["outage"] = {**outage, "slot": outage["hosts"].index(group["host"].format(n=n))}
    return planned


def demo_hosts() -> list[str]:
    """Host names of the default demo fleet: the demo's runs are scoped to them, because a shared
    Zabbix may hold many more hosts (tests, benchmarks, the server's own "Zabbix server")."""
    return [h["host"] for h in plan_hosts(load_fleet(), DEFAULT_HOSTS)]


def _with_incidents(items: list[dict], host: str, incidents: dict) -> list[dict]:
    """The fleet's SYNTHETIC trouble for one host (by name): item generators replaced, e.g. a disk
    filling up."""
    overrides = {}
    for incident in incidents.values():
        if isinstance(incident, dict) and host in incident.get("hosts", []):
            overrides.update(incident.get("generators", {}))
    return [{**i, "generator": overrides[i["key"]]} if i["key"] in overrides else i for i in items]


def seed_window(days: float, end: dt.datetime | str | int | None = None) -> tuple[int, int]:
    """[start, end) in epoch seconds; end defaults to now rounded down to the minute."""
    from etl.window import to_utc

    if days <= 0:
        raise ConfigError(f"--days must be positive, got {days}")
    end_s = int(to_utc(end).timestamp()) if end is not None else int(time.time()) // 60 * 60
    return end_s - int(days * generators.DAY), end_s


def host_rows(host: dict, itemids: dict[str, int], start: int, end: int, seed: int) -> dict[int, list[dict]]:
    """Generated history of one host: value_type -> list of column dicts (one per item)."""
    out: dict[int, list[dict]] = {}
    for spec in host["items"]:
        value_type = int(spec["value_type"])
        # Per-host constants (phase, levels, rates) do not depend on the window; noise does.
        param_rng = generators.rng_for(seed, host["host"], spec["key"], "params")
        noise_rng = generators.rng_for(seed, host["host"], spec["key"], start, end)
        phase = int(param_rng.integers(0, int(spec["interval"])))
        salt = generators.item_salt(seed, host["host"], spec["key"])
        jitter = salt if spec["generator"]["kind"] == "log" else None
        clocks = generators.item_clocks(start, end, int(spec["interval"]), phase, jitter)
        down = None
        if "outage" in host:  # unreachable: the agent's items get no value, the server's checks say down
            o = host["outage"]
            hh, mm = (int(x) for x in o["start_utc"].split(":"))
            down = generators.outage_mask(clocks, o["slot"], len(o["hosts"]), int(o["per_day"]),
                                          hh * 3600 + mm * 60, int(o["minutes"]))
            if "down_value" not in spec:
                clocks, down = clocks[~down], None
        columns = generators.generate(spec, clocks, param_rng, noise_rng, host=host["host"],
                                      market_weight=host["market_weight"])
        if down is not None:
            columns["value"][down] = spec["down_value"]
        columns.update(itemid=np.full(clocks.size, itemids[spec["key"]], dtype=np.int64), clock=clocks,
                       ns=generators.nanoseconds(clocks, salt))
        out.setdefault(value_type, []).append(columns)
    return out


def to_arrow(value_type: int, parts: list[dict]) -> pa.Table:
    """Concatenate per-item column dicts into one table with the history columns of the type."""
    value_type_arrow = {0: pa.float64(), 3: pa.uint64()}.get(value_type, pa.string())
    arrays = {}
    for name in history_columns(value_type):
        chunks = [p[name] for p in parts]
        if name == "value":
            typ = value_type_arrow
        elif name == "source":
            typ = pa.string()
        else:
            typ = pa.int64()
        arrays[name] = pa.chunked_array([pa.array(c, type=typ) for c in chunks], type=typ)
    return pa.table(arrays)


@dataclass
class SeedResult:
    hosts: list[str]
    items: int
    start: int
    end: int
    rows: dict[str, int] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        iso = lambda s: dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")  # noqa: E731
        total = sum(v for k, v in self.rows.items() if k.startswith("history"))
        return [
            f"{len(self.hosts)} hosts, {self.items} items, window [{iso(self.start)}, {iso(self.end)})",
            "rows: " + ", ".join(f"{k}={v}" for k, v in self.rows.items()) + f" (history total {total})",
            "replaced rows already in the window: " + str(sum(self.replaced.values())),
            "took {:.1f}s (api {:.1f}s, generate {:.1f}s, database {:.1f}s)".format(
                sum(self.seconds.values()), self.seconds.get("api", 0), self.seconds.get("generate", 0),
                self.seconds.get("database", 0)),
        ]


# Hosts generated and COPYed at a time: memory stays flat (a chunk of 100 x 50 items x 3 h is
# ~1M rows) whatever the fleet size.
HOST_CHUNK = 100


def seed_fleet(settings: Settings, hosts: int = DEFAULT_HOSTS, days: float = DEFAULT_DAYS,
               end: dt.datetime | str | int | None = None, seed: int = DEFAULT_SEED, prefix: str = "",
               fleet: dict | None = None, items_per_host: int | None = None) -> SeedResult:
    """Create/update the fleet's hosts and items, then replace their history in [end - days, end)
    and rebuild the trends of the touched hours, in one database transaction."""
    fleet = fleet or load_fleet()
    planned = plan_hosts(fleet, hosts, prefix, items_per_host)
    start, end_s = seed_window(days, end)
    result = SeedResult(hosts=[h["host"] for h in planned], items=0, start=start, end=end_s)

    t0 = time.monotonic()
    api = zabbix_api(settings)
    try:
        hostids = ensure_hosts(api, [{k: h[k] for k in ("host", "name", "groups", "tags")} for h in planned])
        specs = [{**i, "hostid": hostids[h["host"]], "tags": {**i.get("tags", {})}} for h in planned for i in h["items"]]
        ids = ensure_items(api, None, specs)
    finally:
        api.logout()
    result.items = len(ids)
    result.seconds["api"] = time.monotonic() - t0

    itemids_by_type: dict[int, list[int]] = {}
    for host in planned:
        hostid = hostids[host["host"]]
        for spec in host["items"]:
            itemids_by_type.setdefault(int(spec["value_type"]), []).append(int(ids[(hostid, spec["key"])]))
    result.seconds["generate"] = result.seconds["database"] = 0.0
    with writer_connection(settings) as conn:
        t0 = time.monotonic()
        for value_type in sorted(itemids_by_type):
            table_name = HISTORY_TABLES[value_type]
            result.replaced[table_name] = delete_history(conn, value_type, itemids_by_type[value_type], start, end_s)
            result.rows.setdefault(table_name, 0)
        result.seconds["database"] += time.monotonic() - t0
        for first in range(0, len(planned), HOST_CHUNK):
            t0 = time.monotonic()
            parts: dict[int, list[dict]] = {}
            for host in planned[first:first + HOST_CHUNK]:
                hostid = hostids[host["host"]]
                itemids = {spec["key"]: int(ids[(hostid, spec["key"])]) for spec in host["items"]}
                for value_type, columns in host_rows(host, itemids, start, end_s, seed).items():
                    parts.setdefault(value_type, []).extend(columns)
            tables = {vt: to_arrow(vt, p) for vt, p in parts.items()}
            del parts
            t1 = time.monotonic()
            result.seconds["generate"] += t1 - t0
            for value_type, table in tables.items():
                result.rows[HISTORY_TABLES[value_type]] += insert_history(conn, value_type, table)
            del tables
            result.seconds["database"] += time.monotonic() - t1
        t0 = time.monotonic()
        # Fresh statistics first: on a new server the planner still takes the tables for empty and
        # the trend rebuild below ran 20+ minutes at 100,000 items instead of seconds.
        analyze_history(conn, sorted(itemids_by_type))
        for value_type in sorted(TRENDS_TABLES):
            if value_type in itemids_by_type:
                result.rows[TRENDS_TABLES[value_type]] = rebuild_trends(conn, value_type, itemids_by_type[value_type],
                                                                        start, end_s)
        result.seconds["database"] += time.monotonic() - t0
    return result


def seeded_coverage(settings: Settings, hosts: list[str], key: str = "system.cpu.util") -> tuple[int, int | None, int | None]:
    """(hosts with history, earliest clock, latest clock) of `key` on these hosts."""
    with writer_connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT h.hostid), min(hi.clock), max(hi.clock) FROM hosts h "
                    "JOIN items i ON i.hostid = h.hostid JOIN history hi ON hi.itemid = i.itemid "
                    "WHERE h.host = ANY(%s) AND i.key_ = %s", (hosts, key))
        return cur.fetchone()


def incident_lines(fleet: dict, days: list[dt.date]) -> list[str]:
    """What SYNTHETIC trouble the fleet file puts into these UTC days (see "incidents")."""
    incidents = fleet.get("incidents", {})
    lines = []
    outage = incidents.get("outage")
    if outage:
        hh, mm = (int(x) for x in outage["start_utc"].split(":"))
        for day in days:
            noon = int(dt.datetime.combine(day, dt.time(hh, mm), tzinfo=dt.timezone.utc).timestamp())
            down = [h for slot, h in enumerate(outage["hosts"])
                    if generators.outage_mask(np.array([noon]), slot, len(outage["hosts"]), int(outage["per_day"]),
                                              hh * 3600 + mm * 60, int(outage["minutes"]))[0]]
            lines.append(f"SYNTHETIC outage {day} {outage['start_utc']}Z +{outage['minutes']} min: {', '.join(down)}")
    disk = incidents.get("disk_fill")
    if disk:
        lines.append(f"SYNTHETIC disk filling up: /data on {', '.join(disk['hosts'])} (62% free at 00:00Z, 2% by midnight)")
    return lines


def incidents_in_history(settings: Settings, fleet: dict, day: dt.date) -> bool:
    """Whether the seeded history of `day` has the fleet's outage (no agent rows of the hosts down
    that day inside the outage window; the server's own checks, items with down_value, record the
    outage instead): a fleet re-seeded from another fleet file would not."""
    outage = fleet.get("incidents", {}).get("outage")
    if not outage:
        return True
    hh, mm = (int(x) for x in outage["start_utc"].split(":"))
    start = int(dt.datetime.combine(day, dt.time(hh, mm), tzinfo=dt.timezone.utc).timestamp())
    end = start + 60 * int(outage["minutes"])
    down = [h for slot, h in enumerate(outage["hosts"])
            if generators.outage_mask(np.array([start]), slot, len(outage["hosts"]), int(outage["per_day"]),
                                      hh * 3600 + mm * 60, int(outage["minutes"]))[0]]
    checks = [i["key"] for i in fleet["items"] if "down_value" in i]
    with writer_connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM hosts h JOIN items i ON i.hostid = h.hostid JOIN history hi "
                    "ON hi.itemid = i.itemid WHERE h.host = ANY(%s) AND NOT i.key_ = ANY(%s) "
                    "AND hi.clock >= %s AND hi.clock < %s", (down, checks, start, end))
        return cur.fetchone()[0] == 0


def run_demo(settings: Settings) -> list[str]:
    """Seed the default fleet unless it already covers the recent window (the last DEFAULT_DAYS
    up to 15 minutes ago); return summary lines."""
    planned = plan_hosts(load_fleet(), DEFAULT_HOSTS)
    names = [h["host"] for h in planned]
    start, end = seed_window(DEFAULT_DAYS)
    covered, first, last = seeded_coverage(settings, names)
    today = dt.datetime.fromtimestamp(end, dt.timezone.utc).date()
    story = incident_lines(load_fleet(), [today - dt.timedelta(days=1), today])
    # A changed fleet file (new incidents, generators) must reach the history even when it is covered.
    import hashlib

    stamp = settings.home / "state" / "demo_fleet.sha256"
    digest = hashlib.sha256(FLEET_FILE.read_bytes()).hexdigest()
    same_fleet = (stamp.is_file() and stamp.read_text().strip() == digest
                  and incidents_in_history(settings, load_fleet(), today - dt.timedelta(days=1)))
    if same_fleet and covered == len(names) and first is not None and first <= start + 60 and last >= end - 900:
        return [f"demo fleet already seeded: {covered} hosts, history up to "
                f"{dt.datetime.fromtimestamp(last, dt.timezone.utc):%Y-%m-%dT%H:%MZ}; nothing to do"] + story
    result = seed_fleet(settings, DEFAULT_HOSTS, DEFAULT_DAYS, seed=DEFAULT_SEED)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return result.lines() + story
