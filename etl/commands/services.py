"""monetl services up|down|status [NAME...]"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("services", help="start, stop or show the local services (PostgreSQL, Zabbix, Elasticsearch, HDFS, Airflow)")
    p.add_argument("action", choices=["up", "down", "status", "install"])
    p.add_argument("names", nargs="*", help="services (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from etl import services
    from etl.config import load

    settings = load()
    names = args.names or None
    if args.action == "install":
        for n in services._with_deps(names or services.ORDER):
            print(f"installing {n} ...", flush=True)
            services.get(n, settings).install()
        return 0
    if args.action == "up":
        for n in services._with_deps(names or services.ORDER):
            print(f"starting {n} ...", flush=True)
            services.get(n, settings).up()
    elif args.action == "down":
        services.down(names, settings)
    healthy_all = True
    for n, (healthy, endpoint) in services.status(names, settings).items():
        healthy_all &= healthy
        print(f"{n:14s} {'up  ' if healthy else 'down'} {endpoint}")
    print(f"logs: {settings.logs_dir}")
    return 0 if (healthy_all or args.action == "down") else 1
