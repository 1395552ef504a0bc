"""`monetl dashboards build`: write the Grafana dashboards (code in etl/dashboards) as JSON into the
provisioning folder docker/grafana/dashboards/."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("dashboards", help="Grafana dashboards (generated from etl/dashboards)")
    ds = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")
    b = ds.add_parser("build", help="write every dashboard's JSON into the provisioning folder")
    b.add_argument("--out", help="folder (default docker/grafana/dashboards in the repository)")
    b.set_defaults(func=_build)


def _build(args) -> int:
    from etl.dashboards.build import write_all

    for path in write_all(args.out):
        print(path)
    return 0
