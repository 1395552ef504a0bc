"""`monetl status` (one screen: OK / WARN / FAIL and what to run next) and `monetl health`
(install the Zabbix template, push the status figures)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("status", help="one screen: ingest lag, gaps, lake, quarantine, extracts, log jobs; exit 1 on FAIL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--gaps-hours", type=int, default=3, help="hours back the gap check counts (default 3)")
    p.add_argument("--push", action="store_true", help="also push the figures to Zabbix (as `monetl health push`)")
    p.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                   help="scope the gap check to this host, as the ingestion is (repeatable; default: the hosts "
                        "with points in Elasticsearch in the last 24 h, i.e. those monetl ingests)")
    p.add_argument("--all-hosts", action="store_true",
                   help="gap check over every host at the source (also those monetl does not ingest)")
    p.set_defaults(func=_status)

    h = sub.add_parser("health", help="monetl's own health in Zabbix")
    hs = h.add_subparsers(dest="health_command", required=True, metavar="ACTION")
    i = hs.add_parser("install", help="import schemas/zabbix/monetl_health.yaml and the health host through the API")
    i.add_argument("--host", help="host name (default MONETL_HEALTH_HOST, monetl)")
    i.set_defaults(func=_install)
    q = hs.add_parser("push", help="measure the status figures and push them (cron or a DAG every few minutes)")
    q.add_argument("--gaps-hours", type=int, default=3)
    q.add_argument("--resend", action="store_true", help="also re-send the last recorded figure of every run type")
    q.add_argument("--all-hosts", action="store_true", help="gap check over every host at the source")
    q.set_defaults(func=_push)


def _collect(args):
    from etl.config import load
    from etl.health.status import collect

    settings = load()
    hosts = getattr(args, "hosts", None)
    scope = {source: hosts for source in ("zabbix", "kcmm")} if hosts else None
    return settings, collect(settings, gaps_hours=args.gaps_hours, hosts=scope,
                             all_hosts=getattr(args, "all_hosts", False))


def _status(args) -> int:
    import json

    settings, status = _collect(args)
    if args.push:
        from etl.health.push import push

        push(settings, status.figures())
    if args.json:
        print(json.dumps(status.to_json(), indent=1, ensure_ascii=False))
    else:
        print("\n".join(status.lines()))
    return 1 if status.overall == "FAIL" else 0


def _install(args) -> int:
    from etl.config import load
    from etl.health.template import TEMPLATE_FILE, install

    found = install(load(), host=args.host)
    print(f"{TEMPLATE_FILE.name}: host {found['host']} (hostid {found['hostid']}) with {found['items']} items "
          f"and {found['triggers']} triggers")
    return 0


def _push(args) -> int:
    from etl.health.push import push, resend_state

    settings, status = _collect(args)
    if args.resend:
        resend_state(settings)
    result = push(settings, status.figures())
    print(f"pushed {len(status.figures())} figures to {settings.health_host}: {result or 'not sent (see log)'}")
    print("\n".join(status.lines()))
    return 0 if result and not result["failed"] else 1
