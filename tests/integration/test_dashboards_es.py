"""Every Elasticsearch panel of the Grafana dashboards, issued as the search Grafana sends, returns
non-empty buckets from real data in the real Elasticsearch: points loaded by the real loader, logs
parsed and loaded by the real `monetl logs load` path (postfix and sshd lines written here, the trade
generator), findings written by the real illegal_access job. Own prefix, deleted afterwards. Grafana itself is not run (not available
here): what is checked is the query each panel holds."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from etl.dashboards.build import all_dashboards
from etl.dashboards.check import check_all, data_range, top_values
from etl.extracts.definition import DEFINITIONS_DIR, load
from etl.lake.fixtures import index_points
from etl.logs.jobs import days_with_data, job_datasets, run_job
from etl.logs.load import load_files
from etl.logs.tradegen import generate_file
from etl.schema import point_schema
from etl.search.client import es_client
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "tedash"
UTC = dt.timezone.utc
HOSTS = [("trading-01", ["trading"]), ("trading-02", ["trading"]), ("web-01", ["web", "office"])]
ITEMS = [  # key, value_type, units
    ("system.cpu.util", 0, "%"), ("vm.memory.utilization", 0, "%"), ("vfs.fs.size[/,pused]", 0, "%"),
    ("agent.ping", 3, ""), ("icmpping", 3, ""), ("icmppingsec", 0, "s"), ("app.status", 1, ""),
]


def _points(end: dt.datetime, minutes: int = 180) -> pa.Table:
    rows = []
    start = int(end.timestamp()) - minutes * 60
    for h, (host, groups) in enumerate(HOSTS):
        for i, (key, value_type, units) in enumerate(ITEMS):
            for m in range(minutes):
                if host == "web-01" and key == "icmpping" and 60 <= m < 90:
                    continue  # a hole: availability shows it
                value = (m % 7) * 10.0 + h if value_type == 0 else float(m % 13 != 0) if value_type == 3 else None
                rows.append({"source": "zabbix", "host": host, "host_name": host.upper(), "host_groups": groups,
                             "itemid": 50_000 + 100 * h + i, "key": key, "item_name": key, "units": units,
                             "value_type": value_type, "value": value,
                             "value_text": "OK" if value_type == 1 else None, "clock": start + 60 * m, "ns": 0,
                             "resolution": "raw", "value_min": None, "value_max": None, "value_count": None,
                             "tags": [], "run_id": f"zabbix:test/{m // 60}"})
    return pa.Table.from_pylist(rows, schema=point_schema())


def _postfix_lines() -> str:
    """Delivered and deferred mail (with queue delays) in postfix's own format, for the real parser."""
    out = []
    for i in range(40):
        status = "sent" if i % 4 else "deferred"
        reply = "(250 2.0.0 Ok: queued)" if status == "sent" else "(connect to mx.example.net[192.0.2.9]:25: timed out)"
        out.append(f"Nov 25 10:{i:02d}:05 mail postfix/smtp[21{i:02d}]: 4B{i:04X}AA: to=<u{i}@example.net>, "
                   f"relay=mx.example.net[192.0.2.9]:25, delay={0.5 + i / 10:.1f}, delays=0.1/0/0.2/0.2, "
                   f"dsn={'2.0.0' if status == 'sent' else '4.4.1'}, status={status} {reply}")
    return "\n".join(out) + "\n"


def _sshd_lines() -> str:
    """A brute force (one address, many users) and a normal login, in auth.log format."""
    out = [f"Nov 25 03:{m:02d}:{s:02d} gw sshd[9{m:02d}]: Failed password for invalid user u{m}{s} from 203.0.113.7 "
           f"port {40000 + m} ssh2" for m in range(5) for s in (1, 21, 41)]
    out.append("Nov 25 09:00:00 gw sshd[999]: Accepted password for ops from 198.51.100.4 port 50000 ssh2")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def loaded(settings, elasticsearch_service, tmp_path_factory):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX, health_push=False,
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")),
                              lake_url=f"file://{tmp_path_factory.mktemp('lake')}")
    es = es_client(cfg)

    def clean():
        for pattern in (f"{PREFIX}-points-*", f"{PREFIX}-logs-*", f"{PREFIX}-findings"):
            es.indices.delete(index=pattern, ignore_unavailable=True, allow_no_indices=True)

    clean()
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    assert index_points(es, _points(end), PREFIX) > 0
    trade = tmp_path_factory.mktemp("trade") / "trade.log"
    generate_file(trade, start="2026-11-25", end="2026-11-26", seed=3, rate=0.5, gateways=1)
    load_files(cfg, "trade", [trade], client=es)
    logs = tmp_path_factory.mktemp("logs")
    (logs / "mail.log").write_text(_postfix_lines())
    (logs / "auth.log").write_text(_sshd_lines())
    load_files(cfg, "postfix", [logs / "mail.log"], year=2026, tz="UTC", client=es)
    load_files(cfg, "sshd", [logs / "auth.log"], year=2026, tz="UTC", client=es)
    es.indices.refresh(index=f"{PREFIX}-logs-*")
    for day in days_with_data(es, PREFIX, job_datasets("illegal_access")):
        run_job(cfg, "illegal_access", Window.day(day), es=es)
    es.indices.refresh(index=f"{PREFIX}-findings")
    yield cfg, es
    clean()


def test_every_panel_returns_buckets_with_all_values(loaded):
    cfg, es = loaded
    results = check_all(es, PREFIX, all_dashboards(), "all")
    assert len(results) >= 25
    assert [r.line() for r in results if r.error or not r.buckets] == []


def test_every_panel_returns_buckets_with_one_value_for_each_variable(loaded):
    cfg, es = loaded
    dashboards = all_dashboards()
    ranges = {uid: data_range(es, PREFIX, uid) for uid in ("monetl-points", "monetl-logs", "monetl-findings")}
    chosen = top_values(es, PREFIX, dashboards["host-detail"], ranges)
    # Most frequent first: groups trading (2 hosts) > web/office, then a trading host.
    assert chosen["group"] == "trading" and chosen["host"].startswith("trading-") and chosen["item"] in dict.fromkeys(
        k for k, _, _ in ITEMS)
    results = check_all(es, PREFIX, dashboards, "top")
    assert [r.line() for r in results if r.error or not r.buckets] == []


def test_availability_up_ratio_matches_a_direct_count(loaded):
    """The panel's up ratio for a host, check item and hour equals successful / all checks counted
    directly, for exactly the check items of the availability extract (its rules marked "check")."""
    from etl.dashboards.es_request import run_target

    cfg, es = loaded
    body = all_dashboards()["availability"]
    target = body["panels"][0]["targets"][0]
    window = data_range(es, PREFIX, "monetl-points")
    leaves = run_target(es, PREFIX, target, window, {"group": "web", "host": "web-01"})
    assert leaves
    checks = [k for r in load(DEFINITIONS_DIR / "availability.json").items if r.check for k in r.keys
              if not k.endswith("*]")]
    assert {path[1] for path, _, _ in leaves} == set(checks) == {"agent.ping", "icmpping"}  # not icmppingsec
    # icmpping's hour with the hole has fewer checks than the others: compare that one too.
    for path, docs, metrics in sorted(leaves, key=lambda leaf: leaf[1])[:2] + [max(leaves, key=lambda leaf: leaf[1])]:
        key, hour_ms = path[1], path[2]
        direct = es.search(index=f"{PREFIX}-points-*", size=0, query={"bool": {"filter": [
            {"term": {"host": "web-01"}}, {"term": {"key": key}},
            {"range": {"clock": {"gte": hour_ms, "lt": hour_ms + 3_600_000, "format": "epoch_millis"}}}]}},
            aggs={"ok": {"sum": {"field": "value"}}})
        total, ok = direct["hits"]["total"]["value"], direct["aggregations"]["ok"]["value"]
        assert docs == total and metrics["1"]["value"] == pytest.approx(ok / total)
