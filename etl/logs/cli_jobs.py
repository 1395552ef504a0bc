"""`monetl logs run JOB --start --end [--json] [--notify]` and `monetl logs bench --start --end`:
argument parsing and printing only; the work is in etl.logs.jobs and etl.notify."""

from __future__ import annotations

JOB_NAMES = ["illegal_access", "mail_failures", "trade_perf"]


def register(logs_sub) -> None:
    p = logs_sub.add_parser("run", help="run one log-analysis job over [start, end) and print its findings")
    p.add_argument("job", choices=JOB_NAMES)
    p.add_argument("--start", required=True, help="window start, ISO 8601 (UTC unless an offset is given)")
    p.add_argument("--end", required=True, help="window end (exclusive)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--notify", action="store_true",
                   help="send high/critical findings not sent before to the configured channels")
    p.set_defaults(func=_run)

    b = logs_sub.add_parser("bench", help="time each job's aggregations over a window (nothing written)")
    b.add_argument("--start", required=True)
    b.add_argument("--end", required=True)
    b.set_defaults(func=_bench)


def format_table(result) -> list[str]:
    lines = [f"{result.job} {result.window}: {len(result.findings)} findings "
             + (" ".join(f"{k}={v}" for k, v in sorted(result.by_severity().items())) or "")]
    if result.findings:
        lines.append(f"{'severity':<9} {'rule':<26} {'source':<24} {'target':<28} {'count':>7}  "
                     "first_seen -> last_seen")
        for f in sorted(result.findings, key=lambda f: (-("low", "medium", "high", "critical").index(f.severity),
                                                         f.rule, f.source)):
            first = f.first_seen.strftime("%Y-%m-%d %H:%M:%S") if f.first_seen else "-"
            last = f.last_seen.strftime("%H:%M:%S") if f.last_seen else "-"
            lines.append(f"{f.severity:<9} {f.rule:<26} {f.source[:24]:<24} {f.target[:28]:<28} {f.count:>7}  "
                         f"{first} -> {last}")
    lines.extend(result.summary)
    return lines


def _run(args) -> int:
    import json

    from etl.config import load
    from etl.logs.jobs import run_job
    from etl.window import Window

    settings = load()
    result = run_job(settings, args.job, Window.parse(args.start, args.end))
    sent = None
    if args.notify:
        from etl.notify import notify_findings

        sent = notify_findings(settings, result)
    if args.json:
        out = result.to_json()
        if sent is not None:
            out["notified"] = sent
        print(json.dumps(out, indent=2, default=str))
    else:
        for line in format_table(result):
            print(line)
        if sent is not None:
            print("notified: " + (", ".join(f"{k} {v}" for k, v in sent.items()) or "no channel configured"))
    return 0


def _bench(args) -> int:
    from etl.config import load
    from etl.logs.jobs import bench_all
    from etl.window import Window

    from etl.logs.jobs import job_datasets
    from etl.logs.jobs.common import SEARCH_OPTIONS, base_query, logs_index
    from etl.search.client import es_client

    settings = load()
    window = Window.parse(args.start, args.end)
    es = es_client(settings)
    for job, seconds in bench_all(settings, window).items():
        datasets = job_datasets(job)
        docs = es.count(index=logs_index(settings.es_index_prefix, datasets), query=base_query(window, datasets),
                        **SEARCH_OPTIONS)["count"]
        print(f"RESULT log_job_seconds job={job} window={window} docs={docs} seconds={seconds:.3f}")
    return 0
