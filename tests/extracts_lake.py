"""A small lake in the team layout for the extracts tests: 1-minute Zabbix and KCMM points for a few
UTC days, with the 5m and 1h rollups computed from them (the compaction's job in production).

    {lake}/points/source={s}/date={YYYY-MM-DD}/      (point schema, sorted) + _manifest.json
    {lake}/rollup_5m|rollup_1h/source={s}/date={YYYY-MM-DD}/
written with the lake's own publish and rollup code (etl.lake), so the layout is the real one.

The fleet has the shapes the reports must handle: Chinese visible names and groups, a host whose
agent is down for two hours (gap), a host silent for a whole day, a text item and an unmatched item."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa

from etl.schema import point_schema

HOSTS = {
    # host: (visible name, groups, base load)
    "web01": ("交易网关-01", ["Web servers", "上海机房"], 35.0),
    "web02": ("web02", ["Web servers"], 20.0),
    "db01": ("核心数据库", ["Databases", "上海机房"], 60.0),
}
# key: (item name, units, value_type)
ITEMS = {
    "system.cpu.util": ("CPU utilization", "%", 0),
    "vm.memory.utilization": ("Memory utilization", "%", 0),
    "vfs.fs.size[/,pfree]": ("/: Space free, in %", "%", 0),
    "vfs.fs.size[/data,pfree]": ("/data: Space free, in %", "%", 0),
    "net.if.in[eth0]": ("eth0: bits received", "bps", 3),
    "net.if.out[eth0]": ("eth0: bits sent", "bps", 3),
    "agent.ping": ("Zabbix agent ping", "", 3),
    "system.uptime": ("System uptime", "s", 3),
    "system.uname": ("System description", "", 1),
}
KCMM = {"kcmm-ws01": "委托终端-01", "kcmm-ws02": "委托终端-02"}
KCMM_COUNTERS = {"kcmm.order_entry_latency_ms": ("下单延迟 Order entry latency", "ms"),
                 "kcmm.quote_delay_ms": ("Quote delay", "ms")}  # keys as schemas/kcmm/mapping.json makes them


def itemid(host: str, key: str) -> int:
    hosts = sorted(HOSTS) + sorted(KCMM)
    keys = sorted(ITEMS) + sorted(KCMM_COUNTERS)
    return 10000 + hosts.index(host) * 100 + keys.index(key)


def _value(host_base: float, key: str, clock: int) -> float:
    phase = (clock % 86400) / 86400 * 2 * math.pi
    if key == "agent.ping":
        return 1.0
    if key.startswith("net.if"):
        return float(int(1e6 * (1 + host_base / 100 + 0.5 * math.sin(phase))))
    if key == "system.uptime":
        return float(clock % 1_000_000)
    if key.startswith("vfs.fs.size"):
        return 100.0 - host_base / 2 - (clock % 86400) / 86400
    # CPU and memory: a daily wave plus a deterministic spike every 97 minutes
    spike = 30.0 if (clock // 60) % 97 == 0 else 0.0
    return min(100.0, host_base + 15 * math.sin(phase) + spike)


def points_for_day(day: dt.date, silent: dict[str, list[tuple[int, int]]] | None = None,
                   run_id: str = "fixture") -> dict[str, pa.Table]:
    """{source: table} of 1-minute samples on one UTC day. silent: host -> [(start_s, end_s)] with no data."""
    silent = silent or {}
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    rows: dict[str, list[dict]] = {"zabbix": [], "kcmm": []}

    def quiet(host, clock):
        return any(a <= clock < b for a, b in silent.get(host, []))

    for host, (name, groups, base) in HOSTS.items():
        for key, (item_name, units, vtype) in ITEMS.items():
            for minute in range(1440):
                clock = start + minute * 60
                if quiet(host, clock):
                    continue
                numeric = vtype in (0, 3)
                value = _value(base, key, clock)
                rows["zabbix"].append({
                    "source": "zabbix", "host": host, "host_name": name, "host_groups": groups,
                    "itemid": itemid(host, key), "key": key, "item_name": item_name, "units": units,
                    "value_type": vtype, "value": (float(int(value)) if vtype == 3 else value) if numeric else None,
                    "value_text": None if numeric else "Linux 6.1 x86_64", "clock": clock, "ns": 0,
                    "resolution": "raw", "tags": [{"tag": "component", "value": key.split(".")[0]}],
                    "run_id": run_id})
    for host, name in KCMM.items():
        for key, (item_name, units) in KCMM_COUNTERS.items():
            for minute in range(1440):
                clock = start + minute * 60
                if quiet(host, clock):
                    continue
                rows["kcmm"].append({
                    "source": "kcmm", "host": host, "host_name": name, "host_groups": ["KCMM"],
                    "itemid": itemid(host, key), "key": key, "item_name": item_name, "units": units,
                    "value_type": 0, "value": 20 + 10 * math.sin(clock / 3600) + (minute % 7),
                    "clock": clock, "ns": 0, "resolution": "raw", "run_id": run_id})
    schema = point_schema()
    return {s: pa.Table.from_pylist(r, schema=schema).sort_by([("host", "ascending"), ("itemid", "ascending"),
                                                                ("clock", "ascending"), ("ns", "ascending")])
            for s, r in rows.items() if r}


def publish_partition(settings, dataset: str, source: str, day: dt.date, table: pa.Table) -> None:
    """Publish one partition through the lake's own writer (staging, manifest, atomic rename)."""
    from etl.lake import layout, manifest, publish
    from etl.lake.rollup import ROLLUP_SCHEMA_NAME
    from etl.lake.storage import open_storage

    storage = open_storage(settings)
    run_id = publish.new_run_id("fixture")
    if dataset == "points":
        target, schema_name, columns = layout.points_partition(source, day), "point", manifest.POINT_CHECKSUM_COLUMNS
    else:
        resolution = {"rollup_5m": "5m", "rollup_1h": "1h"}[dataset]
        target = layout.rollup_partition(resolution, source, day)
        schema_name, columns = ROLLUP_SCHEMA_NAME, manifest.ROLLUP_CHECKSUM_COLUMNS
    staging = layout.staging_path(run_id, target)
    with publish.scratch_dir(settings) as scratch:
        publish.stage_partition(storage, staging, table, {
            "dataset": dataset, "partition": {"source": source, "date": f"{day:%Y-%m-%d}"}, "run_id": run_id,
            "schema_name": schema_name}, Path(scratch), columns)
    publish.publish(storage, staging, target, run_id)


def write_day(settings, day: dt.date, silent=None) -> dict[str, int]:
    """Write one UTC day of points and their 5m/1h rollups (the lake's rollup code); returns raw rows per source."""
    from etl.lake.rollup import rollup

    counts = {}
    for source, points in points_for_day(day, silent).items():
        publish_partition(settings, "rollup_5m", source, day, rollup(points, "5m"))
        publish_partition(settings, "rollup_1h", source, day, rollup(points, "1h"))
        publish_partition(settings, "points", source, day, points)
        counts[source] = points.num_rows
    return counts


def day_start(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())


def standard_lake(settings, first: dt.date) -> list[dt.date]:
    """Two UTC days: db01 down 02:00-04:00 on the first, web02 silent on the whole second."""
    days = [first, first + dt.timedelta(days=1)]
    write_day(settings, days[0], {"db01": [(day_start(days[0]) + 7200, day_start(days[0]) + 14400)]})
    write_day(settings, days[1], {"web02": [(day_start(days[1]), day_start(days[1]) + 86400)]})
    return days
