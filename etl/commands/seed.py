"""monetl seed [--hosts N] [--items N] [--days D] [--end ISO] [--seed S] [--prefix P]: the demo fleet in Zabbix."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("seed", help="create the demo fleet in the local Zabbix (hosts, items, history, trends)")
    p.add_argument("--hosts", type=int, default=50, help="number of hosts (default 50)")
    p.add_argument("--items", type=int, default=None,
                   help="items per host (default: the fleet's 20; more adds per-CPU/interface/volume/worker "
                        "variants in a Linux template's type mix; 2000 x 50 is the design scale)")
    p.add_argument("--days", type=float, default=2.0, help="days of 1-minute history up to --end (default 2)")
    p.add_argument("--end", help="end of the history, ISO 8601 UTC (default: now, rounded down to the minute)")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same values (default 1)")
    p.add_argument("--prefix", default="", help="prefix for host names, to keep a test fleet apart")
    p.add_argument("--fleet", help="fleet definition JSON (default schemas/seed_fleet.json)")
    p.add_argument("--kcmm", action="store_true",
                   help="also seed the KCMM sample: 10 desktops since yesterday 00:00 UTC in the kcmm DB and one CSV export")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from etl.config import load
    from etl.seed.fleet import load_fleet, seed_fleet

    from etl import services

    settings = load()
    fleet = load_fleet(Path(args.fleet)) if args.fleet else None
    services.ensure("zabbix", settings)  # no-op when already up
    result = seed_fleet(settings, hosts=args.hosts, days=args.days, end=args.end, seed=args.seed,
                        prefix=args.prefix, fleet=fleet, items_per_host=args.items)
    for line in result.lines():
        print(line)
    history_rows = sum(v for k, v in result.rows.items() if k.startswith("history"))
    seconds = sum(result.seconds.values())
    print(f"RESULT seed hosts={len(result.hosts)} items={result.items} history_rows={history_rows} "
          f"seconds={seconds:.1f} rows_per_s={history_rows / max(seconds, 1e-9):.0f}")
    if args.kcmm:
        from etl.sources.kcmm_sample import run_demo as seed_kcmm

        for line in seed_kcmm(settings):
            print(line)
    return 0
