"""`monetl logs load` and `monetl logs generate`: argument parsing only; the work is in
etl.logs.load and etl.logs.tradegen (imported inside the handlers to keep `--help` fast)."""

from __future__ import annotations

import sys


def register(logs_sub) -> None:
    p = logs_sub.add_parser("load", help="parse log files into ECS documents and load them into Elasticsearch")
    p.add_argument("--format", required=True, metavar="F",
                   help="log format (sshd, apache, nginx, iis, haproxy, tomcat, postfix, sendmail, exim, "
                        "dovecot, winsec, trade, a pattern file of schemas/logs/formats/) or 'auto' to sniff each file")
    p.add_argument("--year", type=int, default=None,
                   help="year of syslog-style lines, which carry none (default MONETL_LOG_YEAR)")
    p.add_argument("--tz", default=None, help="time zone of zone-less lines (default MONETL_LOG_TZ, else UTC)")
    p.add_argument("--host", default=None, help="host.name for formats that do not name the host")
    p.add_argument("--run-id", default=None, help="run id for the quarantine file (default: generated)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="log files, plain or .gz/.bz2/.xz (told by content); '-' reads standard input; "
                        "a file given twice is read once. Exit 1 if any file loaded nothing usable")
    p.set_defaults(func=_run_load)

    g = logs_sub.add_parser("generate", help="write a synthetic log (labelled as such) for tests and benchmarks")
    g.add_argument("kind", choices=["trade"], help="what to generate")
    g.add_argument("--start", required=True, help="first trading day (YYYY-MM-DD, Asia/Shanghai)")
    g.add_argument("--end", required=True, help="day after the last trading day (YYYY-MM-DD, exclusive)")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--rate", type=float, default=20.0, help="mean requests per second per gateway in continuous trading")
    g.add_argument("--gateways", type=int, default=2)
    g.add_argument("--out", required=True, metavar="FILE")
    g.set_defaults(func=_run_generate)


def _run_load(args) -> int:
    from etl import console
    from etl.config import load as load_settings
    from etl.logs.load import load_files

    console.quiet_own_info(getattr(args, "verbose", False))  # the lines below are the report
    report = load_files(load_settings(), args.format, args.files, year=args.year, tz=args.tz,
                        host=args.host, run_id=args.run_id)
    for line in report.lines():
        print(line)
    unusable = report.unusable()
    for path, reason in unusable:
        print(f"nothing usable loaded from {path}: {reason}", file=sys.stderr)
    return 1 if unusable else 0


def _run_generate(args) -> int:
    from etl.logs.tradegen import generate_file

    n = generate_file(args.out, start=args.start, end=args.end, seed=args.seed, rate=args.rate,
                      gateways=args.gateways)
    print(f"wrote {n} synthetic trade-gateway lines to {args.out}")
    return 0
