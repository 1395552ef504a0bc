"""Point batches -> Elasticsearch documents: every field, @timestamp with nanoseconds, ids equal to
etl.schema.point_id, daily index of the point's own clock; bulk failures come back per row."""

import datetime as dt
import json


from etl.schema import point_id, point_schema, points_index
from etl.search import load
from etl.search.templates import points_template

from points_factory import BASE_CLOCK, batch, point


def test_documents_hold_every_point_field_and_exact_values():
    rows = [point(value=0.1, ns=5), point(itemid=2, value_type=3, value=2.0 ** 53, ns=999_999_999),
            point(itemid=3, value_type=4, value=None, value_text='引号 " and \\ and\nnewline', tags=[]),
            point(itemid=4, resolution="1h", value_min=1.0, value_max=3.0, value_count=60, ns=0)]
    docs = load.documents(batch(rows), "pfx")
    parsed = [json.loads(s) for s in docs.sources]
    for row, doc in zip(rows, parsed):
        assert set(doc) == {f.name for f in point_schema()} | {"@timestamp"}
        for name, value in row.items():
            assert doc[name] == value, name
    assert parsed[0]["@timestamp"] == "2026-11-25T00:01:00.000000005Z"
    assert parsed[1]["@timestamp"] == "2026-11-25T00:01:00.999999999Z"


def test_ids_are_point_ids_and_deterministic():
    rows = [point(), point(ns=0), point(itemid=7, resolution="1h"), point(source="kcmm", itemid=9)]
    first = load.documents(batch(rows), "pfx")
    again = load.documents(batch(rows), "pfx")
    assert first.ids == again.ids and first.sources == again.sources
    assert first.ids == [point_id(r["source"], r["itemid"], r["clock"], r["ns"], r["resolution"]) for r in rows]
    assert len(set(first.ids)) == 4  # same second, other ns: another document


def test_index_is_the_daily_index_of_each_points_clock():
    rows = [point(clock=BASE_CLOCK - 1), point(clock=BASE_CLOCK), point(source="kcmm", clock=BASE_CLOCK + 86399)]
    names = load.documents(batch(rows), "pfx").indices
    assert names == [points_index("pfx", "zabbix", dt.date(2026, 11, 24)),
                     points_index("pfx", "zabbix", dt.date(2026, 11, 25)),
                     points_index("pfx", "kcmm", dt.date(2026, 11, 25))]


def test_empty_batch_has_no_documents():
    assert len(load.documents(batch([]), "pfx")) == 0


def test_template_covers_exactly_the_point_fields(settings):
    body = points_template(settings)
    properties = body["template"]["mappings"]["properties"]
    assert set(properties) == {f.name for f in point_schema()} | {"@timestamp"}
    assert properties["@timestamp"]["type"] == "date_nanos"
    assert body["index_patterns"] == [f"{settings.es_index_prefix}-points-*"]
    assert body["template"]["settings"]["index"]["number_of_replicas"] == settings.es_replicas


def test_overlap_rows_go_as_create_and_the_window_as_index():
    import pyarrow as pa

    from etl.search.load import Documents

    batch = pa.record_batch({"clock": pa.array([100, 100, 101], pa.int64()), "ns": pa.array([0, 5, 0], pa.int64())})
    docs = Documents(["a", "b", "c"], ["i"] * 3, ["{}"] * 3).create_before(batch, 100 * 10**9 + 5)
    assert [next(iter(action)) for action, _ in docs.actions()] == ["create", "index", "index"]
    assert [next(iter(a)) for a, _ in Documents(["a"], ["i"], ["{}"]).actions()] == ["index"]


def _bodies(docs, **limits):
    return list(load._chunks(docs, limits.get("chunk_docs", load.CHUNK_DOCS), limits.get("chunk_bytes", load.CHUNK_BYTES)))


def _as_lists(docs):
    """The same documents through the list path (what a caller that reads or edits them gets)."""
    docs.sources  # makes the lists: from now on bodies are joined from them
    return docs


def test_bodies_cut_from_the_arrays_equal_the_bodies_joined_from_lists():
    big = "长" * 3000  # 9,000 bytes of UTF-8, 3,000 characters: byte limits count bytes
    rows = [point(itemid=i, value_type=4, value=None, value_text=big if i % 7 == 0 else f"t{i}") for i in range(40)]
    for limits in ({}, {"chunk_docs": 6}, {"chunk_bytes": 4096}, {"chunk_docs": 5, "chunk_bytes": 20_000}):
        fast = _bodies(load.documents(batch(rows), "pfx"), **limits)
        slow = _bodies(_as_lists(load.documents(batch(rows), "pfx")), **limits)
        assert fast == slow, limits
        assert sum(n for _, n, _ in fast) == len(rows)
        assert [first for first, _, _ in fast] == [sum(n for _, n, _ in fast[:k]) for k in range(len(fast))]
        for _, n, body in fast:
            assert body.count(b"\n") == 2 * n and body.endswith(b"\n")
            limit = limits.get("chunk_bytes", load.CHUNK_BYTES)
            assert n == 1 or len(body) <= limit
            assert n <= limits.get("chunk_docs", load.CHUNK_DOCS)
    # a document bigger than the byte limit goes alone, not dropped and not joined to others
    alone = _bodies(load.documents(batch(rows), "pfx"), chunk_bytes=4096)
    assert [n for _, n, body in alone if len(body) > 4096] == [1] * 6


def test_overlap_rows_are_sent_as_create_from_the_arrays_too():
    rows = [point(itemid=1, clock=BASE_CLOCK + 9), point(itemid=2, clock=BASE_CLOCK + 10), point(itemid=3, clock=BASE_CLOCK + 11)]
    ids = load.documents(batch(rows), "pfx").ids
    docs = load.documents(batch(rows), "pfx").create_before(batch(rows), (BASE_CLOCK + 10) * 10**9)
    again = docs.subset([2, 0])  # a retry re-sends refused rows with their own operation
    assert docs._from_arrays() and again._from_arrays()  # neither went through Python lists
    ((_, n, body),) = _bodies(docs)
    actions = [json.loads(line) for line in body.decode().splitlines()[::2]]
    assert [next(iter(a)) for a in actions] == ["create", "index", "index"]
    assert [a[next(iter(a))]["_id"] for a in actions] == ids
    ((_, _, retried),) = _bodies(again)
    retried_actions = [json.loads(line) for line in retried.decode().splitlines()[::2]]
    assert [next(iter(a)) for a in retried_actions] == ["index", "create"]
    assert [a[next(iter(a))]["_id"] for a in retried_actions] == [ids[2], ids[0]]
    assert again.index_set() == {points_index("pfx", "zabbix", dt.date(2026, 11, 25))}


def test_an_edited_source_is_what_gets_sent():
    docs = load.documents(batch([point(itemid=1), point(itemid=2)]), "pfx")
    docs.sources[1] = '{"edited": true}'
    ((_, _, body),) = _bodies(docs)
    assert body.decode().splitlines()[3] == '{"edited": true}'


def _pairs(docs):
    """(action line, parsed document) of every NDJSON pair, each pair ending in a newline."""
    out = []
    for line in docs._lines.to_pylist():
        action, source, end = line.split("\n")
        assert end == ""
        out.append((action, json.loads(source)))
    return out


def _fleet_rows():
    tags = [{"tag": 'quote " and \\ back', "value": "line\nbreak\ttab \u0001"}, {"tag": "env", "value": "测试"}]
    rows = []
    for i in range(4):
        clock = BASE_CLOCK + 60 * i
        rows += [point(itemid=1, clock=clock, value=0.1 * i - 1e-300, tags=tags, host_name="交易网关 \"01\""),
                 point(itemid=2, clock=clock, value_type=3, value=float(2 ** 64 - 1), value_uint=2 ** 64 - 1 - i,
                       units=None, item_name=None, host_groups=[]),
                 point(itemid=3, clock=clock, value_type=4, value=None, value_text=f'{{"k": "v{i}"}}\u0000\u001f',
                       tags=[], host_groups=["a", "b"]),
                 point(itemid=4, clock=clock, value_type=2, value=None, value_text="log line", log_timestamp=clock,
                       log_source="Application", log_severity=4, log_eventid=1000 + i, key='eventlog["Application"]'),
                 point(itemid=5, clock=clock, resolution="1h", ns=0, value_min=-1.5, value_max=1e15,
                       value_count=60)]
    return rows


def test_shared_item_labels_give_the_same_documents_as_point_by_point():
    data = batch(_fleet_rows())
    assert load._items_of(data) is not None  # the labels are written once per item here
    shared, reference = load.documents(data, "pfx"), load.documents_by_point(data, "pfx")
    assert shared.ids == reference.ids and shared.indices == reference.indices
    assert _pairs(shared) == _pairs(reference)
    # a slice (the loader cuts source batches into units of work) keeps its own rows' labels
    part = data.slice(3, 11)
    assert _pairs(load.documents(part, "pfx")) == _pairs(load.documents_by_point(part, "pfx"))
    assert {doc["itemid"]: doc["tags"] for _, doc in _pairs(load.documents(part, "pfx"))}[1][0]["tag"] == \
        'quote " and \\ back'


def test_an_item_whose_labels_differ_inside_a_batch_is_written_point_by_point():
    base = [point(clock=BASE_CLOCK + 60 * i) for i in range(4)]
    variants = {
        "host": [*base[:3], point(clock=BASE_CLOCK + 300, host="web01-renamed")],
        "units": [*base[:3], point(clock=BASE_CLOCK + 300, units=None)],
        "tag value": [*base[:3], point(clock=BASE_CLOCK + 300, tags=[{"tag": "component", "value": "disk"}])],
        "tag count": [*base[:3], point(clock=BASE_CLOCK + 300, tags=[])],
        "groups": [*base[:3], point(clock=BASE_CLOCK + 300, host_groups=["Linux servers", "more"])],
    }
    for what, rows in variants.items():
        data = batch(rows)
        assert load._items_of(data) is None, what
        docs = [doc for _, doc in _pairs(load.documents(data, "pfx"))]
        assert [{k: d[k] for k in ("host", "units", "tags", "host_groups")} for d in docs] == \
            [{k: r[k] for k in ("host", "units", "tags", "host_groups")} for r in rows], what
