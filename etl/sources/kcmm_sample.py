"""A realistic KCMM sample: the schema (schemas/kcmm/schema.sql) in the `kcmm` PostgreSQL database,
trading-desktop machines and counters, samples with trading-session shape (latency and quote delay
rise at the open, frame rate drops, rare client crashes, failed logins and collector timeouts), and
CSV exports in the documented format, optionally with a few bad rows.

Deterministic for a given seed, and idempotent: re-generating a range replaces its samples."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from etl.config import Settings
from etl.errors import SourceError
from etl.schema import SCHEMAS_DIR
from etl.seed.generators import item_salt, stable_uniform
from etl.sources.kcmm_mapping import KcmmMapping

SCHEMA_SQL = SCHEMAS_DIR / "kcmm" / "schema.sql"

BRANCHES = [("SH-PD", "上海浦东营业部"), ("SH-XH", "上海徐汇营业部"), ("BJ-JRJ", "北京金融街营业部"),
            ("SZ-FT", "深圳福田营业部"), ("HZ-XH", "杭州西湖营业部")]
DESKS = ["equities", "futures", "margin", "retail"]
# (counter_id, name, category, unit); ids are KCMM's own, names are what the mapping keys on.
COUNTERS = [(1, "order_entry_latency_ms", "trading", "ms", "下单延迟"),
            (2, "order_ack_latency_ms", "trading", "ms", "委托回报延迟"),
            (3, "quote_delay_ms", "market_data", "ms", "行情延迟"),
            (4, "screen_refresh_fps", "ui", "fps", "界面刷新帧率"),
            (5, "cpu_util_pct", "system", "%", "CPU 使用率"),
            (6, "memory_used_mb", "system", "MB", "内存使用"),
            (7, "client_process_up", "process", "", "客户端进程存活"),
            (8, "login_success", "trading", "", "登录成功"),
            (9, "client_version", "process", "", "客户端版本"),
            (10, "disk_free_pct", "system", "%", "磁盘剩余 (not in the mapping: default numeric)")]
CSV_COLUMNS = ["machine_name", "display_name", "branch", "desk", "counter_name", "category", "unit", "sample_time",
               "value", "status"]


@dataclass(frozen=True)
class Machine:
    machine_id: int
    machine_name: str
    display_name: str
    branch: str
    desk: str


def machines(count: int) -> list[Machine]:
    out = []
    for i in range(count):
        code, branch = BRANCHES[i % len(BRANCHES)]
        n = i // len(BRANCHES) + 1
        out.append(Machine(1000 + i, f"{code}-TRD-{n:03d}", f"{branch} 交易终端 {n:02d}", branch, DESKS[i % len(DESKS)]))
    return out


def _session_load(local_minutes: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """0..1: how busy the desk is (Shanghai/Shenzhen sessions 09:30-11:30, 13:00-15:00; the open
    and the close are the busiest)."""
    m = local_minutes
    morning = (m >= 570) & (m < 690)
    afternoon = (m >= 780) & (m < 900)
    load = np.where(morning | afternoon, 0.5, 0.05)
    load = np.where((m >= 570) & (m < 585), 1.0, load)   # the open
    load = np.where((m >= 885) & (m < 900), 0.9, load)   # the close
    return np.where(weekday >= 5, 0.02, load)


def samples(window_start: dt.datetime, window_end: dt.datetime, fleet: list[Machine], interval_s: int = 60,
            timezone: str = "Asia/Shanghai", seed: int = 7) -> dict[str, np.ndarray | list]:
    """Sample columns for every machine x counter every interval_s in [start, end) (UTC bounds):
    machine_id, counter_id, sample_time (naive local datetimes), value (float or NaN), value_text,
    status."""
    rng = np.random.default_rng(seed + int(window_start.timestamp()) // 86400)
    tz = ZoneInfo(timezone)
    first = int(window_start.timestamp())
    first += (-first) % interval_s
    epochs = np.arange(first, int(window_end.timestamp()), interval_s, dtype=np.int64)
    local = [dt.datetime.fromtimestamp(int(e), tz).replace(tzinfo=None) for e in epochs]
    minutes = np.array([t.hour * 60 + t.minute for t in local])
    weekday = np.array([t.weekday() for t in local])
    load = _session_load(minutes, weekday)
    cols = {k: [] for k in ("machine_id", "counter_id", "sample_time", "value", "value_text", "status")}
    n = len(epochs)
    for machine in fleet:
        slow = 1.0 + (machine.machine_id % 7 == 0) * 0.8  # a few desks are on a slow line
        up = (rng.random(n) > 0.002).astype(float)
        values = {
            1: rng.lognormal(np.log(18 + 30 * load * slow), 0.35),
            2: rng.lognormal(np.log(45 + 90 * load * slow), 0.30),
            3: rng.lognormal(np.log(60 + 400 * load * slow), 0.40),
            4: np.clip(60 - 25 * load * rng.random(n) - 3 * rng.random(n), 5, 60),
            5: np.clip(8 + 60 * load + rng.normal(0, 6, n), 0, 100),
            6: 900 + 600 * (minutes / 1440.0) + rng.normal(0, 20, n),
            7: up,
            8: (rng.random(n) > 0.01).astype(float),
            10: np.clip(35 - minutes / 1440.0 + rng.normal(0, 0.2, n), 0, 100),
        }
        for counter_id, _, _, _, _ in COUNTERS:
            if counter_id == 9:  # the client version is reported once an hour
                hourly = np.flatnonzero(minutes % 60 == 0)
                for i in hourly.tolist():
                    cols["machine_id"].append(machine.machine_id)
                    cols["counter_id"].append(9)
                    cols["sample_time"].append(local[i])
                    cols["value"].append(np.nan)
                    cols["value_text"].append("V8.62.0.118" if machine.machine_id % 5 else "V8.61.3.207")
                    cols["status"].append(0)
                continue
            value = np.round(values[counter_id], 3)
            # Collector timeout (no value): a stable function of (machine, counter, minute), so
            # re-seeding an overlapping range fails the same samples and leaves no stale points.
            missed = stable_uniform(epochs, item_salt(seed, machine.machine_id, counter_id)) < 0.003
            status = np.where(missed, 1, 0)
            value = np.where(status == 1, np.nan, value)
            cols["machine_id"] += [machine.machine_id] * n
            cols["counter_id"] += [counter_id] * n
            cols["sample_time"] += local
            cols["value"] += value.tolist()
            cols["value_text"] += [None] * n
            cols["status"] += status.tolist()
    return cols


# --- database --------------------------------------------------------------------------------------

def _connect(url: str):
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    try:
        return psycopg2.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                                password=u.password, dbname=u.database, connect_timeout=10)
    except psycopg2.Error as exc:
        raise SourceError(f"KCMM DB {u.host}:{u.port}/{u.database} as {u.username}: cannot connect: "
                          f"{str(exc).strip()}") from None


def create_schema(settings: Settings) -> None:
    """Apply schemas/kcmm/schema.sql and the machine/counter catalog (idempotent)."""
    conn = _connect(settings.kcmm_db_url.reveal())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
            for cid, name, category, unit, description in COUNTERS:
                cur.execute("INSERT INTO kcmm_counter (counter_id, counter_name, category, unit, description) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (counter_id) DO UPDATE SET "
                            "counter_name = EXCLUDED.counter_name, category = EXCLUDED.category, "
                            "unit = EXCLUDED.unit, description = EXCLUDED.description",
                            (cid, name, category, unit, description))
    finally:
        conn.close()


def seed_db(settings: Settings, start: dt.datetime, end: dt.datetime, machine_count: int = 10,
            interval_s: int = 60, seed: int = 7, timezone: str | None = None,
            machine_offset: int = 0) -> dict[str, int]:
    """Schema, machines, and samples for [start, end) (UTC). Re-running replaces that range's
    samples of these machines. Returns counts."""
    tz = timezone or KcmmMapping.load().timezone
    create_schema(settings)
    fleet = machines(machine_count + machine_offset)[machine_offset:]
    cols = samples(start, end, fleet, interval_s, tz, seed)
    conn = _connect(settings.kcmm_db_url.reveal())
    try:
        with conn, conn.cursor() as cur:
            for m in fleet:
                cur.execute("INSERT INTO kcmm_machine (machine_id, machine_name, display_name, branch, desk, ip_address, "
                            "os_version) VALUES (%s, %s, %s, %s, %s, %s, 'Windows 10 LTSC 21H2') "
                            "ON CONFLICT (machine_id) DO UPDATE SET machine_name = EXCLUDED.machine_name, "
                            "display_name = EXCLUDED.display_name, branch = EXCLUDED.branch, desk = EXCLUDED.desk",
                            (m.machine_id, m.machine_name, m.display_name, m.branch, m.desk,
                             f"10.{m.machine_id // 250 % 250}.{m.machine_id % 250}.21"))
            local_lo = start.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            local_hi = end.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            cur.execute("DELETE FROM kcmm_sample WHERE machine_id = ANY(%s) AND sample_time >= %s AND sample_time < %s",
                        ([m.machine_id for m in fleet], local_lo, local_hi))
            buf = io.StringIO()
            writer = csv.writer(buf)
            for mid, cid, t, v, vt, st in zip(cols["machine_id"], cols["counter_id"], cols["sample_time"],
                                              cols["value"], cols["value_text"], cols["status"]):
                writer.writerow([mid, cid, t.isoformat(sep=" ", timespec="milliseconds"),
                                 "" if v != v else repr(float(v)), "" if vt is None else vt, st])
            buf.seek(0)
            cur.copy_expert("COPY kcmm_sample (machine_id, counter_id, sample_time, value, value_text, status) "
                            "FROM STDIN WITH (FORMAT csv)", buf)
    finally:
        conn.close()
    return {"machines": len(fleet), "samples": len(cols["machine_id"]),
            "missing_values": int(sum(1 for v, t in zip(cols["value"], cols["value_text"]) if v != v and t is None))}


# --- CSV exports -----------------------------------------------------------------------------------

def write_csv_export(directory: Path | str, start: dt.datetime, end: dt.datetime, machine_count: int = 3,
                     interval_s: int = 60, seed: int = 11, bad_rows: int = 0, name: str | None = None,
                     done_marker: bool = False, timezone: str | None = None, machine_offset: int = 0) -> Path:
    """One export file in the documented format, written as .tmp then renamed (so a reader never
    sees it half-written). bad_rows > 0 appends that many unparsable rows (text in a number column,
    a bad timestamp, invalid UTF-8, an empty value, ...) in a fixed rotation."""
    tz = timezone or KcmmMapping.load().timezone
    fleet = machines(machine_count + machine_offset)[machine_offset:]
    by_id = {m.machine_id: m for m in fleet}
    counters = {c[0]: c for c in COUNTERS}
    cols = samples(start, end, fleet, interval_s, tz, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    local_start = start.astimezone(ZoneInfo(tz))
    name = name or f"kcmm_export_{local_start:%Y%m%d_%H%M%S}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # a Windows tool
    writer.writerow(CSV_COLUMNS)
    for mid, cid, t, v, vt, st in zip(cols["machine_id"], cols["counter_id"], cols["sample_time"], cols["value"],
                                      cols["value_text"], cols["status"]):
        m, c = by_id[mid], counters[cid]
        value = vt if vt is not None else ("" if v != v else repr(float(v)))
        if value == "":  # collector failures are not exported
            continue
        writer.writerow([m.machine_name, m.display_name, m.branch, m.desk, c[1], c[2], c[3],
                         t.isoformat(sep=" ", timespec="milliseconds"), value, st])
    data = buf.getvalue().encode("utf-8-sig")
    m0 = fleet[0]
    t0 = cols["sample_time"][0].isoformat(sep=" ", timespec="milliseconds") if cols["sample_time"] else "2026-01-01 00:00:00.000"
    bad_templates = [
        f"{m0.machine_name},{m0.display_name},{m0.branch},{m0.desk},order_entry_latency_ms,trading,ms,{t0},abc,0",
        f"{m0.machine_name},{m0.display_name},{m0.branch},{m0.desk},cpu_util_pct,system,%,2026-13-45 99:00:00.000,12.5,0",
        None,  # invalid UTF-8 bytes (a GBK-encoded branch name)
        f"{m0.machine_name},{m0.display_name},{m0.branch},{m0.desk},quote_delay_ms,market_data,ms,{t0},,1",
        f"{m0.machine_name},{m0.display_name},{m0.branch}",
    ]
    extra = b""
    for i in range(bad_rows):
        template = bad_templates[i % len(bad_templates)]
        if template is None:
            extra += (f"{m0.machine_name},".encode() + "上海浦东营业部".encode("gbk")
                      + f",x,{m0.desk},cpu_util_pct,system,%,{t0},1.0,0\r\n".encode())
        else:
            extra += (template + "\r\n").encode("utf-8")
    tmp = directory / (name + ".tmp")
    tmp.write_bytes(data + extra)
    os.replace(tmp, directory / name)
    if done_marker:
        (directory / (name + ".done")).touch()
    return directory / name


# --- demo ------------------------------------------------------------------------------------------

def run_demo(settings: Settings) -> list[str]:
    """Seed the KCMM sample: 10 trading desktops from the start of yesterday (UTC) in the `kcmm` database (idempotent:
    the range is replaced) and one complete CSV export of the last hour from 3 more desktops in
    settings.kcmm_csv_dir. Then count what each KCMM mode would extract for the last hour."""
    from etl.sources.base import open_source
    from etl.window import Window

    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    # From the start of yesterday (UTC), like the demo's ingestion, so the lake gets a whole day.
    start = dt.datetime.combine(now.date() - dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    seeded = seed_db(settings, start, now, machine_count=10)
    export = write_csv_export(settings.kcmm_csv_dir, now - dt.timedelta(hours=1), now, machine_count=3,
                              machine_offset=10, bad_rows=3, done_marker=True,
                              name=f"kcmm_export_demo_{now:%Y%m%d_%H%M}.csv")
    last_hour = Window(now - dt.timedelta(hours=1), now)
    from sqlalchemy.engine import make_url

    db = make_url(settings.kcmm_db_url.reveal()).render_as_string(hide_password=True)
    lines = [f"KCMM DB {db}: {seeded['machines']} desktops, {seeded['samples']} samples since {start:%Y-%m-%d %H:%M}Z "
             f"({seeded['missing_values']} collector failures without a value)",
             f"KCMM CSV export {export} (3 desktops, last hour, 3 deliberately bad rows)"]
    for mode in ("db", "csv"):
        with open_source("kcmm", settings, mode) as source:
            counts = source.count(last_hour, dt.timedelta(hours=1))
        lines.append(f"kcmm/{mode}: {sum(counts.values())} points available in {last_hour}")
    return lines
