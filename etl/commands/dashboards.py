"""`monetl dashboards build`: write the Grafana dashboards (code in etl/dashboards) as JSON into the
provisioning folder docker/grafana/dashboards/."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("dashboards", help="Grafana dashboards (generated from etl/dashboards)")
    ds = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")
    b = ds.add_parser("build", help="write every dashboard's JSON into the provisioning folder")
    b.add_argument("--out", help="folder (default docker/grafana/dashboards in the repository)")
    b.set_defaults(func=_build)
    c = ds.add_parser("check", help="run every panel query against Elasticsearch over the range its data covers")
    c.add_argument("--variables", choices=["all", "top"], default="all",
                   help="template variables as All, or each set to one value (its most frequent)")
    c.set_defaults(func=_check)


def _build(args) -> int:
    from etl.dashboards.build import write_all

    for path in write_all(args.out):
        print(path)
    return 0


def _check(args) -> int:
    import logging

    from etl.config import load
    from etl.dashboards.build import all_dashboards
    from etl.dashboards.check import check_all
    from etl.search.client import es_client

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one line per panel is enough
    settings = load()
    results = check_all(es_client(settings), settings.es_index_prefix, all_dashboards(), args.variables)
    for r in results:
        print(r.line())
    bad = [r for r in results if r.error or not r.buckets]
    print(f"{len(results) - len(bad)} of {len(results)} panel queries returned data "
          f"(prefix {settings.es_index_prefix}, variables {args.variables})")
    return 1 if bad else 0
