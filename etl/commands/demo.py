"""monetl demo: the main job end to end on local defaults.

Services up, the demo fleet seeded, then every pipeline stage in data-flow order, each stage's
`run_demo(settings)` returning the lines printed in the final summary. Stages are idempotent, so
running the demo twice converges to the same state instead of doubling anything."""

from __future__ import annotations

import importlib
import time

# (title, "module:function") in data-flow order.
STAGES = [
    # First: monetl's own health items exist in Zabbix before any run pushes its figures.
    ("monetl health template in Zabbix", "etl.health.demo:install_demo"),
    ("seed Zabbix demo fleet", "etl.seed:run_demo"),
    ("seed KCMM sample database + CSV export", "etl.sources.kcmm_sample:run_demo"),
    ("ingest Zabbix + KCMM -> Elasticsearch", "etl.ingest:run_demo"),
    ("lost hour: gaps finds it, backfill closes it", "etl.recovery_demo:run_demo"),
    ("compact -> Parquet lake", "etl.lake:run_demo"),
    ("load business logs -> Elasticsearch", "etl.logs.load:run_demo"),
    ("log analysis jobs", "etl.logs.jobs:run_demo"),
    ("Tableau extracts + HTML summary", "etl.extracts:run_demo"),
    # Last: starts Airflow itself (not in DEMO_SERVICES) with a recent catch-up start.
    ("Airflow scheduler runs zabbix_metrics", "etl.scheduler_demo:run_demo"),
    # monetl's own health: Zabbix template + host, the runs' figures, `monetl status`.
    ("monetl health in Zabbix + status", "etl.health.demo:run_demo"),
]
DEMO_SERVICES = ["postgres", "zabbix", "elasticsearch", "hdfs"]


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline end to end on the local stack and summarise")
    p.add_argument("--skip", action="append", default=[], metavar="STAGE",
                   help="skip stages whose title contains this word (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from etl import console, services
    from etl.config import load

    console.quiet_own_info(getattr(args, "verbose", False))  # the stages print their own lines
    settings = load()
    summary: list[tuple[str, float, list[str]]] = []
    t0 = time.monotonic()
    print("== services", flush=True)
    services.up(DEMO_SERVICES, settings)
    for name, (healthy, endpoint) in services.status(DEMO_SERVICES, settings).items():
        print(f"   {name:14s} {'up' if healthy else 'DOWN'} {endpoint}")
    failed = False
    for title, target in STAGES:
        if any(word in title for word in args.skip):
            summary.append((title, 0.0, ["skipped"]))
            continue
        print(f"== {title}", flush=True)
        module_name, func_name = target.split(":")
        started = time.monotonic()
        try:
            lines = getattr(importlib.import_module(module_name), func_name)(settings)
        except Exception as exc:  # one failed stage must not hide what the others produced
            failed = True
            lines = [f"FAILED: {type(exc).__name__}: {exc}"]
        summary.append((title, time.monotonic() - started, list(lines)))
        for line in lines:
            print(f"   {line}", flush=True)
    print("\n== summary")
    for title, seconds, lines in summary:
        print(f"-- {title} ({seconds:.1f}s)")
        for line in lines:
            print(f"   {line}")
    print(f"\nservices stay up (`monetl services status`, `monetl services down`); logs in {settings.logs_dir}")
    print(f"total {time.monotonic() - t0:.0f}s")
    print("\n== where to look next")
    for line in next_steps(settings):
        print(f"   {line}")
    return 1 if failed else 0


def next_steps(settings) -> list[str]:
    """Where a newcomer looks at what the demo produced (secrets are named, never printed)."""
    from pathlib import Path

    extracts = Path(settings.extracts_dir)
    repo = Path(__file__).resolve().parents[2]
    zabbix_ui = settings.zabbix_url.rsplit("/", 1)[0] + "/"
    lines = [
        f"Zabbix: {zabbix_ui} (user {settings.zabbix_user}; password MONETL_ZABBIX_PASSWORD, local default in "
        "the README): Monitoring > Latest data, the outage and disk hosts named by the seed stage",
        f"Tableau extracts: {extracts}/*.hyper (open in Tableau Desktop; `monetl extracts list`)",
        f"summary for people without Tableau: file://{extracts / 'summary.html'}",
    ]
    grafana = repo / "docker" / "grafana" / "provisioning"
    if grafana.is_dir():
        lines.append(f"Grafana: provisioning in {grafana} (dashboards and data sources as code; "
                     "`docker compose -f docker/docker-compose.yml up -d` runs it)")
    lines += [
        "`monetl status`: health of the pipeline and the services; `monetl gaps zabbix --start ... --end ...`",
        f"Elasticsearch indices {settings.es_index_prefix}-*: {settings.es_url}/_cat/indices?v",
    ]
    return lines
