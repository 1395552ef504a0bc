"""Where the machine's CPU went during a measured step: core-seconds per process family (this
process, Elasticsearch, PostgreSQL, the Zabbix frontend's PHP, the Zabbix server) and idle, from
/proc. A benchmark on a shared 2-core node is bound by the sum, not by one process's share.

A family's time counts its live processes plus what its dead children left in their parents'
cutime/cstime, so short-lived PostgreSQL backends are not lost between the two snapshots."""

from __future__ import annotations

import os
from pathlib import Path

FAMILIES = {"java": "elasticsearch", "postgres": "postgresql", "php": "php", "php-fpm": "php",
            "zabbix_server": "zabbix_server"}
_TICK = os.sysconf("SC_CLK_TCK")


def _families() -> dict[str, float]:
    own = os.getpid()
    out: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == own:
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        family = FAMILIES.get(comm)
        if family is None:
            continue
        if comm == "java" and not _is_elasticsearch(proc):
            family = "other java (hdfs)"  # the MiniDFSCluster's JVM is not the node's
        fields = stat[stat.rindex(")") + 2:].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after pid and comm)
        out[family] = out.get(family, 0.0) + sum(int(f) for f in fields[11:15]) / _TICK
    times = os.times()
    out["monetl (this process)"] = times.user + times.system + times.children_user + times.children_system
    return out


def _is_elasticsearch(proc: Path) -> bool:
    try:
        return b"org.elasticsearch" in (proc / "cmdline").read_bytes()
    except OSError:
        return True


def _idle() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / _TICK  # idle + iowait


class CpuMeter:
    def __enter__(self) -> "CpuMeter":
        self._before, self._idle = _families(), _idle()
        self.seconds: dict[str, float] = {}
        return self

    def __exit__(self, *exc) -> None:
        after = _families()
        self.seconds = {k: after.get(k, 0.0) - self._before.get(k, 0.0) for k in after}
        self.seconds["idle"] = _idle() - self._idle

    @property
    def busy(self) -> float:
        """Core-seconds every measured process used together (idle excluded)."""
        return sum(v for k, v in self.seconds.items() if k != "idle")

    def line(self) -> str:
        shown = sorted(((k, v) for k, v in self.seconds.items() if k != "idle" and v >= 0.05), key=lambda kv: -kv[1])
        return ("CPU core-seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in shown)
                + f"; idle {self.seconds.get('idle', 0.0):.1f}")
