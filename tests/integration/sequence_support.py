"""Operator sequences over the whole life of a point (Zabbix -> Elasticsearch -> lake), shared by
tests/integration/test_lake_sequences.py and bench/chaos.

A `Fleet` owns its Zabbix hosts (unique prefix), index prefix, lake folder and quarantine; the
oracle is independent of monetl: `SELECT count(*)` on the Zabbix history tables and direct
Elasticsearch counts. Every sequence ends with `check(day)`: the lake day must hold exactly the
source's points, each once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow as pa

from etl import ingest
from etl.lake import compact, reader, write_block
from etl.schema import points_index
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_hosts, ensure_items, insert_history, writer_connection, zabbix_api
from etl.seed.history_db import HISTORY_TABLES
from etl.sources import open_source
from etl.window import Window

UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parents[2]
ITEMS = [("seq.float", 0), ("seq.uint", 3), ("seq.text", 4)]
STEP_S = 60


def _value(value_type: int, clock: int, salt: int):
    if value_type == 0:
        return (clock % 977) / 7.0 + salt
    if value_type == 3:
        return clock % 100_003 + salt
    return f"状态 {clock % 13} #{salt}"


@dataclasses.dataclass
class Check:
    day: dt.date
    source: int
    lake: int
    unique: int
    index_left: bool
    blocked: bool

    @property
    def lost(self) -> int:
        return max(self.source - self.unique, 0)

    @property
    def duplicated(self) -> int:
        return self.lake - self.unique

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.lake == self.source and not self.blocked

    def __str__(self) -> str:
        return (f"{self.day}: source {self.source}, lake {self.lake} ({self.unique} distinct), "
                f"index left {self.index_left}, write block {self.blocked}")


class Fleet:
    def __init__(self, settings, tag: str, root: Path, hosts: int = 2):
        self.tag = f"{tag}-{uuid.uuid4().hex[:6]}"
        self.prefix = tag  # index prefix: one per suite, dropped at start and end
        root.mkdir(parents=True, exist_ok=True)
        self.settings = dataclasses.replace(settings, es_index_prefix=self.prefix,
                                            lake_url=f"file://{root / 'lake'}",
                                            quarantine_dir=str(root / "quarantine"), late_horizon_hours=24)
        self.es = es_client(self.settings)
        self.drop_indices()
        self.hosts = [f"{self.tag}-h{i}" for i in range(hosts)]
        api = zabbix_api(self.settings)
        try:
            hostids = ensure_hosts(api, [{"host": h, "name": f"序列 {h}", "groups": ["monetltest"],
                                          "tags": {"env": "test"}} for h in self.hosts])
            specs = [{"hostid": hostids[h], "key": k, "name": k, "value_type": vt} for h in self.hosts for k, vt in ITEMS]
            ids = ensure_items(api, None, specs)
        finally:
            api.logout()
        self.items = [(int(ids[(s["hostid"], s["key"])]), s["value_type"]) for s in specs]

    # -- source side (the oracle) -------------------------------------------------------------
    def insert(self, start: dt.datetime, end: dt.datetime, step: int = STEP_S, salt: int = 0, offset: int = 0) -> int:
        """Rows every `step` s in [start, end) per item (shifted by `offset` s, distinct ns per salt)."""
        rows = 0
        with writer_connection(self.settings) as conn:
            for itemid, vt in self.items:
                clocks = range(int(start.timestamp()) + offset, int(end.timestamp()), step)
                batch = [(itemid, c, (c * 7919 + salt * 104_729 + itemid) % 1_000_000_000, _value(vt, c, salt))
                         for c in clocks]
                if batch:
                    rows += insert_history(conn, vt, batch)
        return rows

    def seed_day(self, day: dt.date) -> int:
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        return self.insert(start, start + dt.timedelta(days=1))

    def source_count(self, day: dt.date) -> int:
        window = Window.day(day)
        ids_by_type: dict[int, list[int]] = {}
        for itemid, vt in self.items:
            ids_by_type.setdefault(vt, []).append(itemid)
        total = 0
        with writer_connection(self.settings) as conn, conn.cursor() as cur:
            for vt, ids in ids_by_type.items():
                cur.execute(f"SELECT count(*) FROM {HISTORY_TABLES[vt]} WHERE itemid = ANY(%s) AND clock >= %s "
                            "AND clock < %s", (ids, window.start_s, window.end_s))
                total += cur.fetchone()[0]
        return total

    # -- monetl side ----------------------------------------------------------------------------
    def source(self):
        return open_source("zabbix", self.settings, "db", hosts=self.hosts)

    def ingest(self, window: Window, overlap: dt.timedelta = dt.timedelta(0)):
        return ingest.run(self.settings, self.source(), window, overlap=overlap, use_ge=False)

    def ingest_day(self, day: dt.date, hours: int = 24):
        return self.ingest(Window.day(day) if hours == 24 else Window(
            dt.datetime.combine(day, dt.time(), tzinfo=UTC),
            dt.datetime.combine(day, dt.time(), tzinfo=UTC) + dt.timedelta(hours=hours)))

    def compact(self, day: dt.date, **kwargs):
        return compact.compact_day(self.settings, "zabbix", day, reconcile=True, mode="db", hosts=self.hosts,
                                   es=self.es, **kwargs)

    def cli_env(self) -> dict:
        return {**os.environ, "PYTHONPATH": str(REPO), "MONETL_ES_INDEX_PREFIX": self.prefix,
                "MONETL_LAKE_URL": self.settings.lake_url, "MONETL_QUARANTINE_DIR": self.settings.quarantine_dir}

    def cli_compact_args(self, day: dt.date) -> list[str]:
        args = ["compact", "--source", "zabbix", "--day", str(day), "--mode", "db"]
        for host in self.hosts:
            args += ["--host", host]
        return args

    def compact_killed(self, day: dt.date, stage: str, timeout: float = 120) -> int:
        """`python -m etl compact ...` in a subprocess, SIGKILLed when it reaches `stage`
        (reconcile | block | scan | stage | publish); returns its exit status (-9 when killed)."""
        hooks = {
            "block": ("etl.lake.write_block", "block"),
            "scan": ("etl.lake.compact", "scan_day"),
            "stage": ("etl.lake.publish", "write_parquet_file"),
            "publish": ("etl.lake.compact", "_verify"),
            "reconcile": ("etl.lake.reconcile", "reconcile_day"),
        }
        module, name = hooks[stage]
        script = textwrap.dedent(f"""
            import importlib, sys, time
            target = importlib.import_module({module!r})
            real = getattr(target, {name!r})
            def hooked(*args, **kwargs):
                result = real(*args, **kwargs) if {stage!r} not in ("publish",) else None
                print("REACHED", flush=True)
                time.sleep(600)
            setattr(target, {name!r}, hooked)
            from etl.cli import main
            sys.exit(main({self.cli_compact_args(day)!r}))
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], env=self.cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        try:
            deadline = time.monotonic() + timeout
            line = proc.stdout.readline()
            while line and "REACHED" not in line and time.monotonic() < deadline:
                line = proc.stdout.readline()
            if "REACHED" in line:
                os.kill(proc.pid, signal.SIGKILL)
        finally:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def compact_cli(self, day: dt.date, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "etl", *self.cli_compact_args(day), *extra], env=self.cli_env(),
                              capture_output=True, text=True, cwd=str(REPO), timeout=600)

    def blocked(self, day: dt.date) -> bool:
        index = points_index(self.prefix, "zabbix", day)
        return self.es.indices.exists(index=index) and write_block.holder(self.es, index) is not None

    def es_count(self, day: dt.date) -> int:
        index = points_index(self.prefix, "zabbix", day)
        if not self.es.indices.exists(index=index):
            return 0
        self.es.indices.refresh(index=index)
        return int(self.es.count(index=index)["count"])

    def lake_table(self, day: dt.date) -> pa.Table:
        return reader.read_points(self.settings, "zabbix", Window.day(day))

    def check(self, day: dt.date) -> Check:
        table = self.lake_table(day)
        keys = set(zip(*(table[c].to_pylist() for c in ("itemid", "clock", "ns", "resolution")))) if table.num_rows else set()
        return Check(day, self.source_count(day), table.num_rows, len(keys),
                     self.es.indices.exists(index=points_index(self.prefix, "zabbix", day)), self.blocked(day))

    def quarantine_files(self) -> list[Path]:
        folder = Path(self.settings.quarantine_dir) / ingest.QUARANTINE_AREA
        return sorted(folder.glob("*.jsonl")) if folder.exists() else []

    def manifest(self, day: dt.date) -> dict:
        from etl.lake import layout
        from etl.lake.storage import open_storage

        return reader.read_manifest(open_storage(self.settings), layout.points_partition("zabbix", day))

    # -- clean-up -------------------------------------------------------------------------------
    def drop_indices(self) -> None:
        self.es.indices.delete(index=f"{self.prefix}-points-*", ignore_unavailable=True, allow_no_indices=True)

    def close(self) -> None:
        api = zabbix_api(self.settings)
        try:
            delete_hosts(api, self.settings, self.hosts)
        finally:
            api.logout()
        self.drop_indices()


def fix_quarantine(path: Path, fix) -> Path:
    """An operator's repair of a quarantine file: `fix(record)` on every point record, written next
    to it as <name>.fixed.jsonl (what `monetl replay` is then given)."""
    out = path.with_name(path.stem + ".fixed.jsonl")
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            entry = json.loads(line)
            entry["record"] = fix(entry["record"])
            dst.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return out
