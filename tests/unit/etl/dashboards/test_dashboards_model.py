"""The Grafana dashboards as the SDK builds them: the committed provisioning files are the generator's
output, every dashboard loads back into the SDK's model with Elasticsearch queries decoded as such,
and every field a panel or variable uses exists in its index template with a type that fits."""

from __future__ import annotations

import json

import pytest
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import elasticsearch as es_model

from etl.dashboards import build, datasources, fields
from etl.dashboards.definitions import DASHBOARDS, lucene_keys, sla_breach_query
from etl.health.template import template_doc

register_default_plugins()
BUILT = build.all_dashboards()
COMMITTED = build.GRAFANA_DIR / "dashboards" / "monetl"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_committed_file_is_the_generated_one(name):
    assert json.loads((COMMITTED / f"{name}.json").read_text()) == BUILT[name], \
        "run `monetl dashboards build` and commit docker/grafana/"


def test_provisioning_files_are_generated():
    assert yaml.safe_load((build.GRAFANA_DIR / "provisioning/datasources/monetl.yaml").read_text()) == \
        datasources.provisioning()
    provider = yaml.safe_load((build.GRAFANA_DIR / "provisioning/dashboards/monetl.yaml").read_text())
    assert provider == datasources.dashboard_provider()
    assert provider["providers"][0]["folder"] == "monetl"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_loads_into_the_sdk_model(name):
    loaded = model.Dashboard.from_json(BUILT[name])
    assert loaded.title and loaded.uid and loaded.refresh and loaded.time.from_val == "now-24h"
    panels = [p for p in loaded.panels if isinstance(p, model.Panel)]
    assert len(panels) == len(BUILT[name]["panels"]) >= 3
    es_targets = [t for p in panels for t in (p.targets or []) if isinstance(t, es_model.Dataquery)]
    raw = [t for p in BUILT[name]["panels"] for t in p.get("targets", [])
           if t["datasource"]["type"] == datasources.ES_TYPE]
    assert len(es_targets) == len(raw) > 0
    for target in es_targets:
        assert target.metrics and target.time_field
    # Round trip: model -> JSON gives the same targets back.
    again = json.loads(json.dumps(loaded.to_json(), default=lambda o: o.to_json()))
    assert [p.get("targets") for p in again["panels"]] == [p.get("targets") for p in BUILT[name]["panels"]]


def test_template_variables_where_users_expect_them():
    names = {n: {v["name"] for v in d["templating"]["list"]} for n, d in BUILT.items()}
    assert {"source", "group"} <= names["fleet-overview"]
    assert {"source", "group", "host", "item"} <= names["host-detail"]
    assert {"group", "host"} <= names["availability"]
    assert "source" in names["pipeline-health"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_field_exists_in_its_template_with_a_fitting_type(name):
    assert fields.problems(BUILT[name]) == []


def test_field_check_catches_a_wrong_field_and_a_wrong_type():
    body = json.loads(json.dumps(BUILT["fleet-overview"]))
    target = body["panels"][0]["targets"][0]
    target["bucketAggs"][0]["field"] = "no_such_field"
    target["metrics"][0]["field"] = "host"            # avg on a keyword
    found = fields.problems(body)
    assert any("no_such_field not in the points template" in p for p in found)
    assert any("avg on host of type keyword" in p for p in found)


def test_sla_query_uses_the_rules_thresholds():
    q = sla_breach_query()
    assert 'trade.type:"NEW_ORDER" AND event.duration:>5000000' in q and "event.duration:>10000000" in q


def test_zabbix_panels_match_items_of_the_health_template():
    import re

    names = [i["name"] for t in template_doc()["zabbix_export"]["templates"] for i in t["items"]]
    targets = [t for p in BUILT["pipeline-health"]["panels"] for t in p.get("targets", [])
               if t["datasource"]["type"] == datasources.ZABBIX_TYPE]
    assert targets
    for t in targets:
        pattern = re.compile(t["item"]["filter"].strip("/"))
        assert any(pattern.search(n) for n in names), t["item"]["filter"]


def test_availability_up_ratio_panel_reads_the_extract_check_items():
    """Same definition as the availability extract: its rules marked "check" (not icmppingsec), per
    host and check item, raw samples only."""
    from etl.extracts.definition import DEFINITIONS_DIR, load

    checks = [k for r in load(DEFINITIONS_DIR / "availability.json").items if r.check for k in r.keys]
    target = BUILT["availability"]["panels"][0]["targets"][0]
    assert checks == ["agent.ping", "icmpping", "icmpping[*]"]
    assert lucene_keys(checks) in target["query"] and "icmppingsec" not in target["query"]
    assert "resolution:raw" in target["query"]
    assert [b["type"] for b in target["bucketAggs"]] == ["terms", "terms", "date_histogram"]
    assert [b["field"] for b in target["bucketAggs"][:2]] == ["host", "key"] and target["metrics"][0]["type"] == "avg"
