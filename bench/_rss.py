"""Peak RSS of the benchmark process that calls it, for the benches that measure one in a child.

Not ru_maxrss: Linux carries the parent's peak over fork/vfork + exec into the child, so a child
started from a 2 GB benchmark reported 2 GB whatever it used itself (bench/scale's '2.7 GB peak' of
an earlier run). VmHWM is this process image's own high-water mark."""

from __future__ import annotations

import resource
from pathlib import Path


def own_peak_rss_mb() -> float:
    """This process's peak resident set in MiB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
