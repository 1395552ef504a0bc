"""The long-term lake: Elasticsearch days compacted into Parquet (local disk or HDFS), verified
before the index is deleted, and read back by window.

Public API: read_points, read_findings, write_findings, compact_day, run_demo."""

from __future__ import annotations


def read_points(settings, source, window, resolution="raw", hosts=None, itemids=None, **kwargs):
    from etl.lake.reader import read_points as _read

    return _read(settings, source, window, resolution, hosts, itemids, **kwargs)


def read_findings(settings, job, window, **kwargs):
    from etl.lake.reader import read_findings as _read

    return _read(settings, job, window, **kwargs)


def write_findings(settings, job, day, table, **kwargs):
    from etl.lake.findings import write_findings as _write

    return _write(settings, job, day, table, **kwargs)


def compact_day(settings, source, day, delete=True, **kwargs):
    from etl.lake.compact import compact_day as _compact

    return _compact(settings, source, day, delete, **kwargs)


def run_demo(settings) -> list[str]:
    from etl.lake.demo import run_demo as _run

    return _run(settings)
