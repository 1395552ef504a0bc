"""The local Elasticsearch service: a real 8.19 node that indexes and searches, reused across ensure()."""

from __future__ import annotations

import dataclasses
import json
import urllib.request

import pytest

from etl import services
from etl.search.client import es_client

pytestmark = pytest.mark.integration

PREFIX = "monetltest-essvc"


def _node_ids(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/_nodes/_local/none", timeout=5) as resp:
        return set(json.loads(resp.read())["nodes"])


@pytest.fixture(scope="module")
def es(elasticsearch_service, settings):
    client = es_client(dataclasses.replace(settings, es_index_prefix=PREFIX))
    client.options(ignore_status=404).indices.delete(index=f"{PREFIX}-*")
    yield client
    client.options(ignore_status=404).indices.delete(index=f"{PREFIX}-*")


def test_index_refresh_search_round_trip(es):
    index = f"{PREFIX}-docs"
    es.indices.create(index=index, mappings={"properties": {
        "@timestamp": {"type": "date_nanos"}, "host": {"type": "keyword"}, "value": {"type": "double"}}})
    es.index(index=index, id="p-1", document={
        "@timestamp": "2026-01-02T03:04:05.123456789Z", "host": "web-01", "value": 42.5})
    es.indices.refresh(index=index)

    found = es.search(index=index, query={"term": {"host": "web-01"}})
    hits = found["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["p-1"]
    assert hits[0]["_source"]["value"] == 42.5
    # date_nanos keeps the nanoseconds the point contract relies on.
    assert hits[0]["_source"]["@timestamp"].endswith(".123456789Z")
    assert es.count(index=index, query={"term": {"host": "nobody"}})["count"] == 0


def test_server_is_the_pinned_version(elasticsearch_service):
    with urllib.request.urlopen(f"{elasticsearch_service.url}/_nodes/_local/none?filter_path=nodes.*.version",
                                timeout=5) as resp:
        versions = {n["version"] for n in json.loads(resp.read())["nodes"].values()}
    assert versions == {"8.19.21"}


def test_ensure_twice_reuses_the_running_node(elasticsearch_service, settings):
    before_pid = elasticsearch_service.pid_file.read_text()
    before_nodes = _node_ids(elasticsearch_service.url)

    again = services.ensure("elasticsearch", settings)

    assert again.healthy()
    assert again.pid_file.read_text() == before_pid
    assert _node_ids(again.url) == before_nodes
