"""etl.search.retry with a scripted node under the real elasticsearch client (the HTTP boundary is
faked; tests/integration/test_es_restart.py restarts a real node): 429/503 and connection errors
are retried with growing jittered pauses, a write block is waited out then named, the final
outage error is one line, and a bulk's write-blocked items are re-sent until they load."""

from __future__ import annotations

import dataclasses
import json
import logging

import elasticsearch
import pytest
from elastic_transport import ApiResponseMeta, BaseNode, ConnectionError as TransportConnectionError, HttpHeaders
from elastic_transport._node._base import NodeApiResponse

from etl.config import Settings
from etl.errors import IndexWriteBlocked, StoreUnavailable
from etl.search import load, retry
from etl.search.client import es_client

from points_factory import batch, point

BLOCK = {"error": {"root_cause": [{"type": "cluster_block_exception",
                                   "reason": "index [tc-points-kcmm-2026.11.18] blocked by: [FORBIDDEN/8/index write (api)];"}],
                   "type": "cluster_block_exception",
                   "reason": "index [tc-points-kcmm-2026.11.18] blocked by: [FORBIDDEN/8/index write (api)];"},
         "status": 403}


class ScriptedNode(BaseNode):
    """Answers from `script` (status, body) in order; an Exception entry is raised instead."""

    script: list = []
    seen: list = []

    def perform_request(self, method, target, body=None, headers=None, request_timeout=None):
        ScriptedNode.seen.append((method, target, body))
        step = ScriptedNode.script.pop(0)
        if callable(step):
            step = step(body)
        if isinstance(step, Exception):
            raise step
        status, payload = step
        meta = ApiResponseMeta(status=status, http_version="1.1",
                               headers=HttpHeaders({"content-type": "application/json",
                                                    "x-elastic-product": "Elasticsearch"}),
                               duration=0.0, node=self.config)
        return NodeApiResponse(meta, json.dumps(payload).encode())


@pytest.fixture
def client(monkeypatch):
    pauses: list[float] = []
    now = [0.0]

    def sleep(seconds):
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(retry, "_sleep", sleep)
    monkeypatch.setattr(retry, "_clock", lambda: now[0])
    real = elasticsearch.Elasticsearch
    monkeypatch.setattr(elasticsearch, "Elasticsearch", lambda *a, **kw: real(*a, node_class=ScriptedNode, **kw))
    ScriptedNode.script, ScriptedNode.seen = [], []
    settings = dataclasses.replace(Settings(), es_url="http://127.0.0.1:9299", es_retry_seconds=60,
                                   es_block_wait_seconds=300)
    return es_client(settings), pauses


def refused():
    return TransportConnectionError("Connection error caused by: NewConnectionError(<x>: Failed to establish a new "
                                    "connection: [Errno 111] Connection refused)")


def test_429_and_503_are_retried_with_growing_jittered_pauses(client):
    es, pauses = client
    ScriptedNode.script = [(429, {"error": "busy"}), (503, {"error": "unavailable"}), (429, {}), (200, {"count": 7})]
    assert es.count(index="x")["count"] == 7
    assert len(pauses) == 3
    for attempt, pause in enumerate(pauses):  # d/2 <= pause <= d, d = 0.5 * 2**attempt
        d = 0.5 * 2 ** attempt
        assert d / 2 <= pause <= d


def test_an_outage_ends_in_one_clear_error_and_no_tracebacks_in_the_log(client, caplog):
    es, pauses = client
    ScriptedNode.script = [refused() for _ in range(50)]
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as failure:
        es.count(index="x")
    text = str(failure.value)
    assert text.startswith("Elasticsearch unreachable at http://127.0.0.1:9299: connection refused (")
    assert "\n" not in text and sum(pauses) >= 60
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING], caplog.text


def test_a_node_back_within_the_budget_is_not_an_error(client):
    es, pauses = client
    ScriptedNode.script = [refused(), refused(), (200, {"count": 1})]
    assert es.count(index="x")["count"] == 1 and len(pauses) == 2


def test_other_http_errors_are_not_retried(client):
    es, pauses = client
    ScriptedNode.script = [(400, {"error": {"type": "parsing_exception", "reason": "bad"}, "status": 400})]
    with pytest.raises(elasticsearch.BadRequestError):
        es.count(index="x")
    assert pauses == []


def test_an_index_write_block_is_waited_out(client):
    es, pauses = client
    ScriptedNode.script = [(403, BLOCK), (403, BLOCK), (200, {"_id": "1", "result": "created"})]
    es.index(index="tc-points-kcmm-2026.11.18", id="1", document={"a": 1})
    assert len(pauses) == 2


def test_a_write_block_that_outlasts_the_wait_names_the_index(client):
    es, pauses = client
    ScriptedNode.script = [(403, BLOCK) for _ in range(100)]
    with pytest.raises(IndexWriteBlocked, match=r"index tc-points-kcmm-2026.11.18 is write-blocked"):
        es.index(index="tc-points-kcmm-2026.11.18", id="1", document={"a": 1})
    assert sum(pauses) >= 300


def _bulk_answer(body, blocked_ids):
    items = []
    for line in body.decode().splitlines()[::2]:
        doc_id = json.loads(line)["index"]["_id"]
        if doc_id in blocked_ids:
            items.append({"index": {"_id": doc_id, "status": 403, "error": BLOCK["error"]}})
        else:
            items.append({"index": {"_id": doc_id, "status": 201, "result": "created"}})
    return 200, {"errors": bool(blocked_ids), "took": 1, "items": items}


def test_bulk_items_refused_by_a_write_block_are_resent_until_they_load(client):
    es, pauses = client
    docs = load.documents(batch([point(itemid=i) for i in range(1, 6)]), "tc")
    first = set(docs.ids[1:3])
    ScriptedNode.script = [lambda body: _bulk_answer(body, first), lambda body: _bulk_answer(body, first),
                           lambda body: _bulk_answer(body, set())]
    result = load.bulk(es, docs)
    assert result.loaded == 5 and result.failed == {}
    resent = [body.decode().count('"_id"') for _, _, body in ScriptedNode.seen]
    assert resent == [5, 2, 2] and len(pauses) == 2


def test_bulk_items_still_blocked_after_the_wait_fail_the_load(client):
    es, pauses = client
    docs = load.documents(batch([point(itemid=i) for i in range(1, 4)]), "tc")
    ScriptedNode.script = [lambda body: _bulk_answer(body, set(docs.ids)) for _ in range(100)]
    with pytest.raises(IndexWriteBlocked, match="3 documents still refused"):
        load.bulk(es, docs)


def test_bulk_items_refused_with_503_while_shards_start_are_resent(client):
    es, pauses = client
    docs = load.documents(batch([point(itemid=i) for i in range(1, 4)]), "tc")

    def unavailable(body):
        items = [{"index": {"_id": json.loads(line)["index"]["_id"], "status": 503,
                            "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}}
                 for line in body.decode().splitlines()[::2]]
        return 200, {"errors": True, "took": 1, "items": items}

    ScriptedNode.script = [unavailable, lambda body: _bulk_answer(body, set())]
    result = load.bulk(es, docs)
    assert result.loaded == 3 and result.failed == {} and len(pauses) == 1
