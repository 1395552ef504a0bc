"""The points index layout v3 (logsdb index mode, stored _source, sorted by itemid and @timestamp,
no doc values on fields nothing aggregates) on the real Elasticsearch: a point keeps one identity
(`index` of a changed value overwrites, `create` of a stored point answers 409), a malformed value
is refused (logsdb's default would ignore it silently), _source comes back as sent, and an index
made under the previous layout still takes points and gets fields added to the contract.
Oracle: direct counts and gets on the index."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

import datetime as dt

import pyarrow as pa

from etl.schema import point_id, point_schema, points_index
from etl.search import load
from etl.search.client import es_client
from etl.search.templates import (_add_missing_fields, apply_points_template, points_template,
                                  points_template_name)

pytestmark = pytest.mark.integration

PREFIX = "monetltest-layout"
BASE_CLOCK = 1_795_564_800  # 2026-11-25T00:00:00Z


def point(**overrides) -> dict:
    row = {"source": "zabbix", "host": "web01", "host_name": "交易网关 01", "host_groups": ["Linux servers"],
           "itemid": 10001, "key": "system.cpu.util", "item_name": "CPU utilization", "units": "%",
           "value_type": 0, "value": 12.5, "clock": BASE_CLOCK + 60, "ns": 123456789, "resolution": "raw",
           "tags": [{"tag": "component", "value": "cpu"}], "run_id": "test"}
    row.update(overrides)
    return row


def batch(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=point_schema())


@pytest.fixture
def env(settings, elasticsearch_service):
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX)
    client = es_client(cfg)
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    apply_points_template(client, cfg)
    yield cfg, client
    client.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def _rows(n: int = 20) -> list[dict]:
    return [point(itemid=100 + i % 4, clock=BASE_CLOCK + 60 * (i // 4), ns=i * 7, value=float(i),
                  tags=[{"tag": "b", "value": "1"}, {"tag": "a", "value": "2"}, {"tag": "b", "value": "0"}])
            for i in range(n)]


def _count(client, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def test_a_point_keeps_one_identity_and_its_source(env):
    cfg, client = env
    rows = _rows()
    docs = load.documents(batch(rows), PREFIX)
    index = docs.indices[0]
    assert load.bulk(client, docs).loaded == len(rows)
    settings = client.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["mode"] == "logsdb" and settings["sort"]["field"] == ["itemid", "@timestamp"]
    assert _count(client, index) == len(rows)

    # A replay after a fix: the same point ids with other values overwrite.
    fixed = load.documents(batch([{**r, "value": r["value"] + 0.5} for r in rows]), PREFIX)
    assert load.bulk(client, fixed).loaded == len(rows)
    assert _count(client, index) == len(rows)
    one = client.get(index=index, id=point_id("zabbix", 100, BASE_CLOCK, 0))["_source"]
    assert one["value"] == 0.5
    # Stored _source: as sent, tag pairs and order included.
    assert one["tags"] == rows[0]["tags"] and one["clock"] == BASE_CLOCK and one["value_uint"] is None

    # The overlap: `create` of stored points answers 409 each, counted as already stored.
    again = load.documents(batch(rows), PREFIX).create_before(batch(rows), (BASE_CLOCK + 10**6) * 10**9)
    result = load.bulk(client, again)
    assert (result.loaded, result.existing, result.failed) == (len(rows), len(rows), {})
    assert _count(client, index) == len(rows)


def test_a_malformed_value_is_refused_not_ignored(env):
    cfg, client = env
    docs = load.documents(batch([point()]), PREFIX)
    doc = json.loads(docs.sources[0])
    doc["value"] = "not a number"
    docs.sources[0] = json.dumps(doc)
    result = load.bulk(client, docs)
    assert result.loaded == 0 and "document_parsing_exception" in result.failed[0], result.failed


def test_an_index_of_the_previous_layout_takes_points_and_new_fields(env):
    cfg, client = env
    rows = _rows(8)
    index = points_index(PREFIX, "zabbix", dt.date(2026, 11, 25))
    client.indices.delete(index=index, ignore_unavailable=True)
    v2 = copy.deepcopy(points_template(cfg)["template"])
    v2["settings"]["index"] = {k: v for k, v in v2["settings"]["index"].items() if k not in ("mode", "sort", "mapping")}
    v2["mappings"]["properties"].update({"host_name": {"type": "keyword"}, "item_name": {"type": "keyword"},
                                        "tags": {"type": "flattened"}, "value_uint": {"type": "keyword"},
                                        "ns": {"type": "long", "index": False}})
    # Made before the v3 template exists, as on a cluster upgraded in the middle of a day.
    client.indices.delete_index_template(name=points_template_name(cfg))
    client.indices.create(index=index, settings=v2["settings"], mappings=v2["mappings"])
    assert "mode" not in client.indices.get_settings(index=index)[index]["settings"]["index"]
    apply_points_template(client, cfg)  # the v3 template over a v2 index: no conflict
    assert load.bulk(client, load.documents(batch(rows), PREFIX)).loaded == len(rows)
    assert _count(client, index) == len(rows)

    properties = {**points_template(cfg)["template"]["mappings"]["properties"], "added_later": {"type": "keyword"}}
    _add_missing_fields(client, f"{PREFIX}-points-*", properties)
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["added_later"] == {"type": "keyword"}
    assert mapping["tags"]["type"] == "flattened" and "doc_values" not in mapping["host_name"]
