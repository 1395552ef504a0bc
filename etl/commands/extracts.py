"""`monetl extracts`: build Tableau .hyper extracts from the lake, list their definitions, rewrite
the HTML summary. Days are report-local calendar days (MONETL_REPORT_TZ), [start, end)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("extracts", help="Tableau .hyper extracts from the lake and the HTML summary")
    actions = p.add_subparsers(dest="extracts_command", required=True, metavar="ACTION")

    b = actions.add_parser("build", help="(re)build extracts for report days; a day is replaced, never doubled")
    b.add_argument("--name", default="all", help="extract name (schemas/extracts/<name>.json) or 'all' (default)")
    b.add_argument("--start", help="first report day YYYY-MM-DD (default: every day in the lake)")
    b.add_argument("--end", help="report day after the last one, YYYY-MM-DD (default: start + 1 day)")
    b.add_argument("--fresh", action="store_true",
                   help="start the .hyper files over (after a definition change); builds only the given days")
    b.add_argument("--no-summary", action="store_true", help="do not rewrite summary.html")
    b.add_argument("--no-copy", action="store_true", help="skip the HDFS copy and the Tableau Server publish")
    b.set_defaults(func=_build)

    ls = actions.add_parser("list", help="extract definitions, their tables and the files built so far")
    ls.set_defaults(func=_list)

    s = actions.add_parser("summary", help="rewrite summary.html from the extracts as they are")
    s.set_defaults(func=_summary)


def _days(args):
    import datetime as dt

    from etl.errors import ConfigError
    from etl.extracts.periods import day_range, parse_day

    if not args.start:
        if args.end:
            raise ConfigError("--end needs --start")
        return None
    start = parse_day(args.start)
    end = parse_day(args.end) if args.end else start + dt.timedelta(days=1)
    return day_range(start, end)


def _build(args) -> int:
    from etl.config import load
    from etl.extracts.pipeline import run

    settings = load()
    days = _days(args)
    result = run(settings, args.name, days, fresh=args.fresh, summary=not args.no_summary, copy=not args.no_copy)
    if not result.extracts:
        print(f"the lake {settings.lake_url} holds no days: nothing built")
    for line in result.lines():
        print(line)
    return 0


def _list(args) -> int:
    from etl.config import load
    from etl.extracts import model
    from etl.extracts.build import extracts_dir
    from etl.extracts.definition import load_all

    folder = extracts_dir(load())
    for definition in load_all().values():
        path = folder / definition.file_name
        state = f"{path} ({path.stat().st_size:,} bytes)" if path.exists() else f"{path} (not built yet)"
        print(f"{definition.name} v{definition.version} from {definition.dataset}: {state}")
        for fact in definition.facts:
            table = model.fact_table(fact)
            print(f"  {fact.table} [{fact.grain}, {fact.dataset}] key ({', '.join(table.primary_key)}): "
                  f"{', '.join(m.name for m in fact.measures)}")
        print(f"  dimensions: {', '.join(t.name for t in model.dimension_tables(definition))}")
    return 0


def _summary(args) -> int:
    from etl.config import load
    from etl.extracts.summary import write_summary

    print(write_summary(load()))
    return 0
