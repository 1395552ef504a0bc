"""monetl ingest | gaps | backfill | replay: the metric pipeline by hand, exactly what the DAGs run.

Exit codes: 0 all valid points loaded; 1 some points failed to load (or replay left still-bad
records, or gaps found missing or short buckets, or a bucket is still short after backfill);
2 a usage/config/service error. Quarantined points are not missing: `gaps` shows them in their
own column and state and exits 0 for them."""

from __future__ import annotations

import re
import sys

SOURCES = ["zabbix", "kcmm"]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def duration(text: str):
    """'10m', '1h', '30s', '2d' -> timedelta (argparse type)."""
    import argparse
    import datetime as dt

    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 10m, 1h, 1d")
    number, unit = int(match.group(1)), match.group(2)
    return dt.timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def _window_args(p) -> None:
    p.add_argument("source", choices=SOURCES)
    p.add_argument("--start", required=True, help="window start, ISO 8601 UTC (e.g. 2026-11-25T00:00Z)")
    p.add_argument("--end", required=True, help="window end (exclusive)")
    p.add_argument("--mode", choices=["api", "db", "csv"], help="source mode (zabbix: api|db, kcmm: db|csv)")
    p.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                   help="only this technical host name (repeatable; default: every host)")


def register(sub) -> None:
    p = sub.add_parser("ingest", help="load one window of Zabbix or KCMM points into Elasticsearch")
    _window_args(p)
    p.add_argument("--overlap", type=duration, default="10m",
                   help="also re-read this much before --start to pick up late values (default 10m)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run_ingest)

    p = sub.add_parser("gaps", help="per-bucket point counts, source vs Elasticsearch ∪ lake; lists missing/short buckets")
    _window_args(p)
    p.add_argument("--bucket", type=duration, default="1h", help="bucket size (default 1h)")
    p.add_argument("--all", action="store_true", help="show every bucket, not only gaps")
    p.set_defaults(func=run_gaps)

    p = sub.add_parser("backfill", help="ingest exactly the buckets `gaps` reports as missing or short")
    _window_args(p)
    p.add_argument("--bucket", type=duration, default="1h", help="bucket size (default 1h)")
    p.set_defaults(func=run_backfill)

    p = sub.add_parser("replay", help="re-validate and load quarantined points (a .jsonl file or a folder)")
    p.add_argument("path")
    p.set_defaults(func=run_replay)


def _quiet_libraries(args) -> None:
    """One line per HTTP request (elastic_transport) drowns the summary; -v keeps them."""
    import logging

    if not getattr(args, "verbose", False):
        for name in ("elastic_transport", "great_expectations", "httpx", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _settings_and_window(args):
    from etl.config import load
    from etl.window import Window

    _quiet_libraries(args)

    return load(), Window.parse(args.start, args.end)


def _summary_table(summaries) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for s in summaries:
        window = s.run_id.split(":", 1)[1] if ":" in s.run_id else s.window
        table = Table(title=f"{s.source}/{s.mode} {window}", title_justify="left")
        table.add_column("value type")
        for column in ("read", "loaded", "quarantined"):
            table.add_column(column, justify="right")
        for name in sorted(set(s.read) | set(s.loaded) | set(s.quarantined)):
            table.add_row(name, str(s.read.get(name, 0)), str(s.loaded.get(name, 0)), str(s.quarantined.get(name, 0)))
        table.add_row("total", str(s.points_read), str(s.points_loaded), str(s.points_quarantined), style="bold")
        console.print(table)
        console.print(f"run {s.run_id}: {s.seconds:.1f}s; indices {', '.join(s.indices) or '-'}", highlight=False)
        if s.quarantined_at_source:
            console.print(f"  {s.quarantined_at_source} record(s) quarantined by the source", highlight=False)
        if s.reasons:
            console.print("  quarantine reasons: " + "; ".join(f"{k} x{v}" for k, v in s.reasons.items()),
                          highlight=False)
        if s.quarantine_path:
            console.print(f"  quarantine file: {s.quarantine_path}  (fix, then `monetl replay PATH`)",
                          highlight=False)
        if s.load_failures:
            console.print(f"  [red]{s.load_failures} point(s) failed to load[/red]")


def run_ingest(args) -> int:
    from etl import ingest

    settings, window = _settings_and_window(args)
    summary = ingest.run(settings, args.source, window, mode=args.mode, overlap=args.overlap,
                         progress="none" if args.no_progress else "auto", hosts=args.hosts)
    _summary_table([summary])
    return 0 if summary.ok else 1


def _gap_table(report, show_all: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"{report.source} {report.window} per {report.bucket}"
    if report.hosts:
        title += f" (hosts: {', '.join(report.hosts)})"
    table = Table(title=title)
    for column in ("bucket start", "source", "elasticsearch", "lake", "store", "quarantined", "missing", "status",
                   "quarantine reasons"):
        table.add_column(column)
    for b in report.buckets:
        if show_all or b.status != "ok":
            table.add_row(f"{b.start:%Y-%m-%dT%H:%M:%SZ}", str(b.source_count), str(b.es_count), str(b.lake_count),
                          str(b.stored), str(b.quarantined), str(b.missing), b.status, b.reasons_text)
    Console(width=200).print(table)
    quarantined = sum(b.quarantined for b in report.buckets)
    duplicates = sum(b.duplicates for b in report.buckets)
    line = f"{len(report.gaps)} bucket(s) missing or short of {len(report.buckets)}"
    if quarantined:
        line += f"; {quarantined} point(s) quarantined (not missing: fix and `monetl replay`)"
    if duplicates:
        line += f"; {duplicates} duplicate source row(s) counted once"
    print(line)


def run_gaps(args) -> int:
    from etl import ingest

    settings, window = _settings_and_window(args)
    report = ingest.gaps(settings, args.source, window, args.bucket, mode=args.mode, hosts=args.hosts)
    _gap_table(report, args.all)
    return 1 if report.gaps else 0


def run_backfill(args) -> int:
    from etl import ingest

    settings, window = _settings_and_window(args)
    result = ingest.backfill(settings, args.source, window, args.bucket, mode=args.mode, progress="auto",
                             hosts=args.hosts)
    report, summaries = result
    _gap_table(report, False)
    if not summaries:
        print("nothing to backfill")
        return 0
    _summary_table(summaries)
    for b, why in result.still_short:
        print(f"still short after backfill: {b.start:%Y-%m-%dT%H:%M:%SZ} {b.missing} of {b.source_count} point(s) "
              f"missing: {why}", file=sys.stderr)
    if not result.still_short:
        print("after backfill: every bucket complete (store = source - quarantined)")
    return 0 if result.ok else 1


def run_replay(args) -> int:
    from etl import ingest
    from etl.config import load

    _quiet_libraries(args)
    report = ingest.replay(load(), args.path)
    print(report.line())
    for problem in report.problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    for reason, count in report.reasons.items():
        print(f"  still bad: {reason} x{count}")
    if report.still_bad:
        print("  fix those records and replay the new file", file=sys.stderr)
    return 0 if report.ok else 1
