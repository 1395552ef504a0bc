"""`monetl compact` (Elasticsearch days -> lake, verified before delete) and `monetl lake`
(query and list what the lake holds)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("compact", help="compact daily points indices into the Parquet lake, verify, then delete them")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--day", help="UTC day YYYY-MM-DD (with --source)")
    which.add_argument("--older-than-retention", action="store_true",
                       help="every day older than MONETL_SHORT_TERM_DAYS that still has an index")
    p.add_argument("--source", help="zabbix | kcmm (default with --older-than-retention: all)")
    p.add_argument("--keep", action="store_true", help="keep the index even when the lake copy verifies")
    p.add_argument("--replace", action="store_true",
                   help="rebuild a day the lake holds from the index alone (default: merge the two); "
                        "the log names the points that go")
    p.add_argument("--no-reconcile", action="store_true",
                   help="skip counting the day at the source and backfilling what is missing first")
    p.add_argument("--mode", choices=["api", "db", "csv"], help="source mode for the reconciliation")
    p.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                   help="reconcile only these technical host names (repeatable; default: every host)")
    p.set_defaults(func=_compact)

    lake = sub.add_parser("lake", help="read the long-term lake")
    lake_sub = lake.add_subparsers(dest="lake_command", required=True, metavar="ACTION")
    q = lake_sub.add_parser("query", help="points or rollups of a source in [start, end)")
    q.add_argument("--source", required=True)
    q.add_argument("--start", required=True, help="ISO 8601, UTC if no offset")
    q.add_argument("--end", required=True, help="ISO 8601, exclusive")
    q.add_argument("--resolution", choices=["raw", "5m", "1h"], default="raw")
    q.add_argument("--host", action="append", help="technical host name (repeatable)")
    q.add_argument("--item", action="append", help="item key, e.g. system.cpu.util (repeatable)")
    q.add_argument("--itemid", action="append", type=int, help="itemid (repeatable)")
    q.add_argument("--format", choices=["table", "csv", "parquet"], default="table")
    q.add_argument("--out", help="output file (required for parquet; csv goes to stdout without it)")
    q.add_argument("--limit", type=int, default=50, help="rows shown by --format table")
    q.set_defaults(func=_query)
    ls = lake_sub.add_parser("ls", help="published partitions (rows, run, created) of a source")
    ls.add_argument("--source", required=True)
    ls.add_argument("--dataset", choices=["points", "rollup_5m", "rollup_1h"], default="points")
    ls.set_defaults(func=_ls)
    v = lake_sub.add_parser("verify", help="compare a published day with its Elasticsearch index (no delete)")
    v.add_argument("--source", required=True)
    v.add_argument("--day", required=True)
    v.set_defaults(func=_verify)


def _compact(args) -> int:
    from etl.config import load
    from etl.errors import ConfigError
    from etl.commands.ingest import _quiet_libraries
    from etl.lake import compact

    _quiet_libraries(args)
    settings = load()

    def show(report) -> None:
        for line in report.lines():
            print(line, flush=True)

    if args.older_than_retention:
        if args.keep:
            raise ConfigError("--keep makes no sense with --older-than-retention (those days are due for deletion)")
        if args.replace:
            raise ConfigError("--replace is for one day (--day), after looking at what it drops")
        if not compact.compact_older_than_retention(settings, args.source or "*", on_report=show,
                                                    reconcile=not args.no_reconcile, mode=args.mode,
                                                    hosts=args.hosts):
            print(f"no index older than {settings.short_term_days} days: nothing to compact")
        return 0
    if not args.source:
        raise ConfigError("--day needs --source")
    show(compact.compact_day(settings, args.source, args.day, delete=not args.keep, replace=args.replace,
                             reconcile=not args.no_reconcile, mode=args.mode, hosts=args.hosts))
    return 0


def _query(args) -> int:
    import sys

    from etl.config import load
    from etl.errors import ConfigError
    from etl.lake.reader import read_points
    from etl.window import Window

    settings = load()
    window = Window.parse(args.start, args.end)
    table = read_points(settings, args.source, window, args.resolution, hosts=args.host,
                        itemids=args.itemid, keys=args.item)
    if args.format == "parquet":
        import pyarrow.parquet as pq

        if not args.out:
            raise ConfigError("--format parquet needs --out PATH")
        pq.write_table(table, args.out, compression="zstd")
        print(f"{table.num_rows} rows -> {args.out}")
    elif args.format == "csv":
        import pyarrow.csv as pcsv

        flat = _flatten(table)
        if args.out:
            pcsv.write_csv(flat, args.out)
            print(f"{table.num_rows} rows -> {args.out}")
        else:
            pcsv.write_csv(flat, sys.stdout.buffer)
    else:
        frame = table.slice(0, args.limit).to_pandas()
        print(frame.to_string(index=False) if len(frame) else "(no rows)")
        print(f"{table.num_rows} rows from {settings.lake_url} ({args.resolution}, {window})")
    return 0


def _flatten(table):
    """CSV has no lists: list columns become JSON text."""
    import json

    import pyarrow as pa

    columns = []
    for name in table.column_names:
        column = table[name]
        if pa.types.is_list(column.type):
            column = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in column.to_pylist()],
                              pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _ls(args) -> int:
    from etl.config import load
    from etl.lake import layout, reader
    from etl.lake.storage import open_storage

    settings = load()
    storage = open_storage(settings)
    for day in sorted(reader.published_days(storage, args.source, args.dataset)):
        partition = layout.join(layout.source_dir(args.dataset, args.source), f"date={day:%Y-%m-%d}")
        found = reader.read_manifest(storage, partition)
        print(f"{day}  {found['rows']:>10} rows  checksum {found['checksum']}  run {found['run_id']}  "
              f"created {found['created_at']}  from {found.get('source_index') or '-'}")
    return 0


def _verify(args) -> int:
    from etl.config import load
    from etl.lake.compact import verify_day

    rows, checksum = verify_day(load(), args.source, args.day)
    print(f"{args.source} {args.day}: lake matches Elasticsearch ({rows} points, checksum {checksum})")
    return 0
