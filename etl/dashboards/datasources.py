"""The Grafana datasources the dashboards use: one per index family, with the index pattern (under
the prefix) and time field each panel query runs against, plus monetl's health host in Zabbix."""

from __future__ import annotations

from dataclasses import dataclass

ES_TYPE = "elasticsearch"
ZABBIX_TYPE = "alexanderzobnin-zabbix-datasource"   # Grafana's Zabbix plugin (app alexanderzobnin-zabbix-app)


@dataclass(frozen=True)
class Datasource:
    uid: str
    name: str
    type: str
    index: str = ""          # pattern under the prefix: {prefix}<index>
    time_field: str = ""
    template: str = ""       # index template (schemas/...) whose mapping the fields must exist in

    def index_for(self, prefix: str) -> str:
        return f"{prefix}{self.index}"


POINTS = Datasource("monetl-points", "monetl points", ES_TYPE, "-points-*", "clock", "points")
LOGS = Datasource("monetl-logs", "monetl logs", ES_TYPE, "-logs-*", "@timestamp", "logs")
FINDINGS = Datasource("monetl-findings", "monetl findings", ES_TYPE, "-findings", "last_seen", "findings")
ZABBIX = Datasource("monetl-zabbix", "monetl Zabbix", ZABBIX_TYPE)
ALL = {d.uid: d for d in (POINTS, LOGS, FINDINGS, ZABBIX)}
ELASTIC = [POINTS, LOGS, FINDINGS]


def provisioning(prefix_var: str = "${MONETL_ES_INDEX_PREFIX}") -> dict:
    """The datasources provisioning file for the compose stack. Grafana expands ${VAR} from its
    environment (docker-compose.yml passes the values from docker/.env), so no secret is in git."""
    out = []
    for ds in ELASTIC:
        out.append({"name": ds.name, "uid": ds.uid, "type": ES_TYPE, "access": "proxy",
                    "url": "http://elasticsearch:9200", "basicAuth": True, "basicAuthUser": "elastic",
                    "editable": False,
                    "jsonData": {"index": f"{prefix_var}{ds.index}", "timeField": ds.time_field,
                                 "maxConcurrentShardRequests": 5},
                    "secureJsonData": {"basicAuthPassword": "${ELASTIC_PASSWORD}"}})
    out.append({"name": ZABBIX.name, "uid": ZABBIX.uid, "type": ZABBIX_TYPE, "access": "proxy",
                "url": "http://zabbix-web:8080/api_jsonrpc.php", "editable": False,
                "jsonData": {"username": "${ZABBIX_API_USER}", "trends": True},
                "secureJsonData": {"password": "${ZABBIX_API_PASSWORD}"}})
    return {"apiVersion": 1, "datasources": out}


def plugins() -> dict:
    """The Zabbix app (installed by GF_INSTALL_PLUGINS) enabled, so its datasource type exists."""
    return {"apiVersion": 1, "apps": [{"type": "alexanderzobnin-zabbix-app", "org_id": 1, "disabled": False}]}


def dashboard_provider() -> dict:
    return {"apiVersion": 1, "providers": [{
        "name": "monetl", "orgId": 1, "folder": "monetl", "folderUid": "monetl", "type": "file",
        "disableDeletion": True, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": "/etc/grafana/dashboards/monetl", "foldersFromFilesStructure": False}}]}
