"""The seven dashboards, built with grafana-foundation-sdk. Every Elasticsearch panel is a plain
aggregation (terms / date_histogram / filters with count, avg, max, percentiles) on fields of the
index templates, so it works on the daily, the time-series or any later index layout.

Item keys, SLA thresholds and availability items are read from schemas/ (the same definitions the
log jobs and the availability extract use), never repeated here."""

from __future__ import annotations

import functools
import json

from grafana_foundation_sdk.builders import barchart, dashboard, elasticsearch as es, stat, table, timeseries
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

from etl.dashboards.datasources import FINDINGS, LOGS, POINTS, ZABBIX, Datasource
from etl.schema import SCHEMAS_DIR

REFRESH = "1m"
TIME_FROM = "now-24h"
CPU, MEMORY, DISK = "system.cpu.util", "vm.memory.utilization", "vfs.fs.size[/,pused]"


def _ref(ds: Datasource) -> DataSourceRef:
    return DataSourceRef(type_val=ds.type, uid=ds.uid)


@functools.cache
def _schema(rel: str) -> dict:
    return json.loads((SCHEMAS_DIR / rel).read_text(encoding="utf-8"))


def availability_keys() -> list[str]:
    """Item keys of the availability extract, its 0/1 check items first (schemas/extracts/availability.json)."""
    return [k for i in _schema("extracts/availability.json")["items"] for k in i["keys"]]


def availability_check_keys() -> list[str]:
    """Keys of the 0/1 check items: the rules marked "check", whose values the extract's up_ratio averages."""
    return [k for i in _schema("extracts/availability.json")["items"] if i.get("check") for k in i["keys"]]


def lucene_keys(keys: list[str]) -> str:
    """key:(...) for exact keys and key patterns (icmpping[*]) in Lucene syntax."""
    parts = []
    for k in keys:
        if k.endswith("[*]"):
            parts.append(k[:-3].replace(".", "\\.") + "\\[*")
        else:
            parts.append('"' + k + '"')
    return "key:(" + " OR ".join(parts) + ")"


def sla_breach_query() -> str:
    """Trades slower than their type's SLA (rules.json trade_perf.sla_ms; event.duration is ns)."""
    sla = _schema("logs/rules.json")["trade_perf"]["sla_ms"]
    per_type = [f'(trade.type:"{t}" AND event.duration:>{ms * 1_000_000})' for t, ms in sla.items() if t != "default"]
    named = " OR ".join(f'"{t}"' for t in sla if t != "default")
    per_type.append(f"(NOT trade.type:({named}) AND event.duration:>{sla['default'] * 1_000_000})")
    return f'event.dataset:"trade.gateway" AND ({" OR ".join(per_type)})'


# --- query pieces --------------------------------------------------------------------------------

def count(id_: str = "1"):
    return es.Count().id(id_)


def avg(field: str, id_: str = "1"):
    return es.Average().id(id_).field(field)


def max_(field: str, id_: str = "1"):
    return es.Max().id(id_).field(field)


def percentiles(field: str, percents: list[str], id_: str = "1"):
    return es.Percentiles().id(id_).field(field).settings(es.ElasticsearchPercentilesSettings().percents(percents))


def terms(field: str, id_: str, size: int = 10, order_by: str = "_count", order: str = "desc"):
    return es.Terms().id(id_).field(field).settings(
        es.ElasticsearchTermsSettings().size(str(size)).order_by(order_by).order(order).min_doc_count("1"))


def histogram(ds: Datasource, id_: str, interval: str = "auto", min_doc_count: str = "0"):
    return es.DateHistogram().id(id_).field(ds.time_field).settings(
        es.ElasticsearchDateHistogramSettings().interval(interval).min_doc_count(min_doc_count))


def query(ds: Datasource, lucene: str, metrics: list, buckets: list, ref: str = "A", alias: str = ""):
    q = (es.Dataquery().ref_id(ref).datasource(_ref(ds)).query(lucene).time_field(ds.time_field)
         .metrics(metrics).bucket_aggs(buckets))
    return q.alias(alias) if alias else q


def _panel(kind, title: str, ds: Datasource, targets: list, description: str = "", unit: str = "",
           width: int = 12, height: int = 8):
    p = kind.Panel().title(title).datasource(_ref(ds)).targets(targets).span(width).height(height)
    if description:
        p = p.description(description)
    if unit:
        p = p.unit(unit)
    return p


def ts(*a, **kw):
    return _panel(timeseries, *a, **kw)


def tbl(*a, **kw):
    return _panel(table, *a, **kw)


def bars(*a, **kw):
    return _panel(barchart, *a, **kw)


def stats(*a, **kw):
    return _panel(stat, *a, **kw)


# --- template variables --------------------------------------------------------------------------

def variable(name: str, label: str, ds: Datasource, field: str, lucene: str = "", include_all: bool = True):
    body = {"find": "terms", "field": field}
    if lucene:
        body["query"] = lucene
    return (dashboard.QueryVariable(name).label(label).datasource(_ref(ds)).query(json.dumps(body))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(include_all))


def source_var():
    return variable("source", "Source", POINTS, "source")


def group_var():
    return variable("group", "Host group", POINTS, "host_groups", "source:$source")


def host_var(multi_all: bool = True):
    return variable("host", "Host", POINTS, "host", "source:$source AND host_groups:$group", include_all=multi_all)


def item_var():
    return variable("item", "Item", POINTS, "key", "source:$source AND host:$host")


def base(uid: str, title: str, description: str, tags: list[str]):
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(["monetl", *tags])
            .time(TIME_FROM, "now").refresh(REFRESH).timezone("browser").editable()
            .timepicker(dashboard.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"])))


# --- the dashboards ------------------------------------------------------------------------------

def fleet_overview():
    sel = "source:$source AND host_groups:$group"
    d = base("monetl-fleet", "Fleet overview", "CPU, memory and disk by host group, top hosts, hosts gone quiet.",
             ["fleet"]).with_variable(source_var()).with_variable(group_var())
    for key, title in ((CPU, "CPU utilisation"), (MEMORY, "Memory utilisation"), (DISK, "Disk / used")):
        d = d.with_panel(ts(f"{title} by host group (avg)", POINTS,
                            [query(POINTS, f'{sel} AND key:"{key}"', [avg("value")],
                                   [terms("host_groups", "2", 20, "_key", "asc"), histogram(POINTS, "3")])],
                            unit="percent", width=8))
    d = d.with_panel(bars("Top 10 hosts by CPU (avg)", POINTS,
                          [query(POINTS, f'{sel} AND key:"{CPU}"', [avg("value")], [terms("host", "2", 10, "1")])],
                          unit="percent"))
    d = d.with_panel(tbl("Hosts by last data (oldest first: hosts with no recent data on top)", POINTS,
                         [query(POINTS, sel, [max_("clock")], [terms("host", "2", 500, "1", "asc")])],
                         description="Newest point per host in the time range; a host absent from the range has no "
                                     "data at all in it.", unit="dateTimeAsIso"))
    return d


def host_detail():
    sel = "source:$source AND host:$host"
    d = (base("monetl-host", "Host detail", "Every item of $host over time; units as stored with the points.",
              ["host"]).with_variable(source_var()).with_variable(group_var()).with_variable(host_var())
         .with_variable(item_var()))
    d = d.with_panel(ts("$item on $host (avg per interval)", POINTS,
                        [query(POINTS, f"{sel} AND key:$item AND value_type:(0 OR 3)", [avg("value")],
                               [terms("key", "2", 50, "_key", "asc"), histogram(POINTS, "3")])],
                        width=24, height=10))
    d = d.with_panel(tbl("Items of $host: units, last value and samples", POINTS,
                         [query(POINTS, f"{sel} AND value_type:(0 OR 3)", [max_("value", "1"), avg("value", "4"),
                                                                          count("5")],
                                [terms("key", "2", 200, "_key", "asc"), terms("units", "3", 5)])],
                         description="units comes from each point document (Zabbix item units).", width=24))
    d = d.with_panel(tbl("Text and log items of $host (samples)", POINTS,
                         [query(POINTS, f"{sel} AND value_type:(1 OR 2 OR 4)", [count()],
                                [terms("key", "2", 100, "_key", "asc")])], width=24))
    return d


def availability():
    check_keys, all_keys = availability_check_keys(), availability_keys()
    sel = "source:zabbix AND host_groups:$group AND host:$host"
    d = (base("monetl-availability", "Availability",
              "Per host and hour, as the availability extract (schemas/extracts/availability.json): up ratio = mean of "
              "the 0/1 values of each check item (\"check\": true), per host and item like its up_ratio; data = "
              "5-minute buckets holding a sample of any of its items.", ["availability"])
         .with_variable(group_var()).with_variable(host_var()))
    # Samples only (resolution raw), as the extract: trend rows are hourly averages, not checks.
    d = d.with_panel(tbl("Up ratio per host, check item and hour (" + ", ".join(check_keys) + ")", POINTS,
                         [query(POINTS, f"{sel} AND resolution:raw AND {lucene_keys(check_keys)}", [avg("value")],
                                [terms("host", "2", 500, "_key", "asc"), terms("key", "4", 10, "_key", "asc"),
                                 histogram(POINTS, "3", "1h", "1")])],
                         unit="percentunit", width=24))
    d = d.with_panel(tbl("Check samples per host and hour", POINTS,
                         [query(POINTS, f"{sel} AND {lucene_keys(all_keys)}", [count()],
                                [terms("host", "2", 500, "_key", "asc"), histogram(POINTS, "3", "1h", "0")])],
                         width=12))
    d = d.with_panel(ts("5-minute buckets with data per host (no_data_minutes = 5 x empty buckets)", POINTS,
                        [query(POINTS, f"{sel} AND {lucene_keys(all_keys)}", [count()],
                               [terms("host", "2", 50, "_key", "asc"), histogram(POINTS, "3", "5m", "0")])],
                        width=12))
    return d


TRADE = 'event.dataset:"trade.gateway"'


def trade_performance():
    d = (base("monetl-trade", "Core-trade performance",
              "Trading-gateway requests: volume, result mix (success rate), p95/p99 latency, SLA breaches per trade "
              "type and channel (SLA per type from schemas/logs/rules.json).", ["trade"])
         .with_variable(variable("type", "Trade type", LOGS, "trade.type", TRADE))
         .with_variable(variable("channel", "Channel", LOGS, "trade.channel", TRADE)))
    sel = f"{TRADE} AND trade.type:$type AND trade.channel:$channel"
    d = d.with_panel(ts("Volume per trade type", LOGS, [query(LOGS, sel, [count()],
                                                            [terms("trade.type", "2", 10, "_key", "asc"),
                                                             histogram(LOGS, "3")])]))
    d = d.with_panel(ts("Results per trade type (stack as percent: success rate = OK share)", LOGS,
                        [query(LOGS, sel, [count()], [terms("trade.type", "2", 10, "_key", "asc"),
                                                      terms("trade.result", "3", 5, "_key", "asc"),
                                                      histogram(LOGS, "4")])]))
    d = d.with_panel(ts("p95 / p99 latency per trade type", LOGS,
                        [query(LOGS, sel, [percentiles("event.duration", ["95", "99"])],
                               [terms("trade.type", "2", 10, "_key", "asc"), histogram(LOGS, "3")])], unit="ns"))
    d = d.with_panel(tbl("SLA breaches per trade type and channel", LOGS,
                         [query(LOGS, f"({sla_breach_query()}) AND trade.type:$type AND trade.channel:$channel",
                                [count()], [terms("trade.type", "2", 10, "_key", "asc"),
                                            terms("trade.channel", "3", 10, "_key", "asc")])]))
    d = d.with_panel(tbl("Latency by channel (p50/p95/p99)", LOGS,
                         [query(LOGS, sel, [percentiles("event.duration", ["50", "95", "99"])],
                                [terms("trade.channel", "2", 10, "_key", "asc")])], unit="ns", width=24))
    return d


def security():
    sel = 'job:"illegal_access" AND severity:$severity'
    d = (base("monetl-security", "Security: illegal access",
              "Findings of the illegal_access job (brute force, probing, off-hours privileged logins, floods, spraying).",
              ["security"])
         .with_variable(variable("severity", "Severity", FINDINGS, "severity", 'job:"illegal_access"')))
    d = d.with_panel(ts("Findings by severity", FINDINGS,
                        [query(FINDINGS, sel, [count()], [terms("severity", "2", 5, "_key", "asc"),
                                                          histogram(FINDINGS, "3")])]))
    d = d.with_panel(tbl("Findings by rule and severity", FINDINGS,
                         [query(FINDINGS, sel, [count(), max_("count", "4")],
                                [terms("rule", "2", 20), terms("severity", "3", 5)])]))
    d = d.with_panel(bars("Top 10 sources (by events)", FINDINGS,
                          [query(FINDINGS, sel, [count(), max_("count", "3")], [terms("source", "2", 10, "_count")])]))
    d = d.with_panel(bars("Top 10 targets", FINDINGS,
                          [query(FINDINGS, sel, [count()], [terms("target", "2", 10)])]))
    return d


def mail_delivery():
    datasets = _schema("logs/rules.json")["mail_failures"]["datasets"]
    mail = "event.dataset:(" + " OR ".join(f'"{d}"' for d in datasets) + ")"
    failed = 'NOT email.delivery.status:"sent"'
    d = (base("monetl-mail", "Mail delivery", "Sent / deferred / bounced / expired / rejected, top domains and reasons.",
              ["mail"]).with_variable(variable("status", "Status", LOGS, "email.delivery.status", mail)))
    sel = f"{mail} AND email.delivery.status:$status"
    d = d.with_panel(ts("Deliveries by status", LOGS,
                        [query(LOGS, sel, [count()], [terms("email.delivery.status", "2", 10, "_key", "asc"),
                                                      histogram(LOGS, "3")])], width=24))
    d = d.with_panel(bars("Top 10 recipient domains of failed mail", LOGS,
                          [query(LOGS, f"{mail} AND {failed}", [count()], [terms("email.to.domain", "2", 10)])]))
    d = d.with_panel(tbl("Top failure reasons", LOGS,
                         [query(LOGS, f"{mail} AND {failed}", [count()],
                                [terms("email.delivery.status", "2", 10), terms("email.reason", "3", 10)])]))
    d = d.with_panel(ts("Queue delay p50 / p95", LOGS,
                        [query(LOGS, f'{mail} AND email.delivery.status:"sent"',
                               [percentiles("email.delay_s", ["50", "95"])], [histogram(LOGS, "2")])], unit="s",
                        width=24))
    return d


def pipeline_health():
    d = (base("monetl-pipeline", "Pipeline health",
              "monetl itself: points landed per source, newest point, run ids, findings per job (Elasticsearch); the "
              "health figures pushed to the Zabbix host `monetl` (template schemas/zabbix/monetl_health.yaml).",
              ["pipeline"]).with_variable(source_var())
         .with_variable(dashboard.TextBoxVariable("health_host").label("Zabbix health host").default_value("monetl")))
    d = d.with_panel(ts("Points landed per source", POINTS,
                        [query(POINTS, "source:$source", [count()], [terms("source", "2", 5, "_key", "asc"),
                                                                      histogram(POINTS, "3")])]))
    d = d.with_panel(tbl("Newest point per source", POINTS,
                         [query(POINTS, "source:$source", [max_("clock")], [terms("source", "2", 5, "_key", "asc")])],
                         unit="dateTimeAsIso"))
    d = d.with_panel(tbl("Points per ingest run (newest runs)", POINTS,
                         [query(POINTS, "source:$source", [count(), max_("@timestamp", "3")],
                                [terms("run_id", "2", 20, "3")])], width=24))
    d = d.with_panel(ts("Findings per log job", FINDINGS,
                        [query(FINDINGS, "*", [count()], [terms("job", "2", 5, "_key", "asc"),
                                                          histogram(FINDINGS, "3")])]))
    d = d.with_panel(zabbix_panel("Ingest lag per source (Zabbix)", "/ingest: lag$/", "s"))
    d = d.with_panel(zabbix_panel("Quarantine rate per source (Zabbix)", "/ingest: quarantine rate/", "percent"))
    d = d.with_panel(zabbix_panel("Open gaps and their age (Zabbix)", "/ gaps: /", ""))
    d = d.with_panel(zabbix_panel("Points loaded / quarantined per run (Zabbix)",
                                  "/ingest: points (loaded|quarantined)/", ""))
    return d


class ZabbixTarget:
    """A query of the Grafana Zabbix plugin (no model in the SDK): items of the health host by key regex."""

    def __init__(self, item_regex: str):
        self.item_regex = item_regex

    def build(self):
        return self

    def to_json(self) -> dict:
        return {"refId": "A", "datasource": {"type": ZABBIX.type, "uid": ZABBIX.uid}, "queryType": "0",
                "group": {"filter": "monetl"}, "host": {"filter": "$health_host"},
                "item": {"filter": self.item_regex}, "itemTag": {"filter": ""},
                "options": {"showDisabledItems": False}}


def zabbix_panel(title: str, item_regex: str, unit: str):
    # The plugin matches item *names* (regex): the names of schemas/zabbix/monetl_health.yaml.
    return _panel(timeseries, title, ZABBIX, [ZabbixTarget(item_regex)], unit=unit, width=12)


DASHBOARDS = {
    "fleet-overview": fleet_overview, "host-detail": host_detail, "availability": availability,
    "core-trade-performance": trade_performance, "security": security, "mail-delivery": mail_delivery,
    "pipeline-health": pipeline_health,
}
