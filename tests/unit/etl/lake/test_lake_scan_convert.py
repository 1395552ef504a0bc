"""hits -> Arrow conversion (the ES side is exercised in tests/integration/test_lake_compaction.py)."""

from etl.lake.es_scan import hits_to_batch
from etl.schema import point_schema


def _source(i, **change):
    doc = dict(source="zabbix", host="h", host_name="主机", host_groups=["g"], itemid=i, key="k", item_name="n",
               units="%", value_type=0, value=1.5, value_text=None, clock=1_700_000_000 + i, ns=i, resolution="raw",
               value_min=None, value_max=None, value_count=None, tags=[{"tag": "a", "value": "b"}], run_id="r")
    doc["@timestamp"] = "ignored"
    doc.update(change)
    return {"_id": f"zabbix:{i}", "_source": doc}


def test_good_hits_become_point_rows_without_es_only_fields():
    batch, bad = hits_to_batch([_source(1), _source(2, value=3)])
    assert bad == []
    assert batch.schema == point_schema()
    assert batch.column("value").to_pylist() == [1.5, 3.0]
    assert batch.column("tags").to_pylist()[0] == [{"tag": "a", "value": "b"}]


def test_bad_hits_are_returned_with_reasons_and_the_rest_kept():
    hits = [_source(1), _source(2, itemid=None), _source(3, value="not a number"), _source(4)]
    batch, bad = hits_to_batch(hits)
    assert batch.column("itemid").to_pylist() == [1, 4]
    reasons = {hit["_id"]: reason for hit, reason in bad}
    assert "itemid" in reasons["zabbix:2"]
    assert "type" in reasons["zabbix:3"]


def _body(hits):
    import json

    return json.dumps({"pit_id": "p", "hits": {"hits": [dict(h, sort=[7, i]) for i, h in enumerate(hits)]}},
                      ensure_ascii=False).encode()


def test_arrow_page_parse_equals_the_python_path_and_drops_es_only_fields():
    from etl.lake.es_scan import parse_points_page

    hits = [_source(1), _source(2, value=3, value_text="中文\n\"x\""), _source(3, tags=[], host_groups=None)]
    page = parse_points_page(_body(hits))
    batch, rejected = page.payload
    assert rejected == [] and page.hits == 3 and page.last_sort == [7, 2]
    expected, _ = hits_to_batch(hits)
    assert batch.equals(expected)


def test_arrow_page_parse_names_bad_documents():
    from etl.lake.es_scan import parse_points_page

    batch, rejected = parse_points_page(_body([_source(1), _source(2, itemid=None)])).payload
    assert batch.column("itemid").to_pylist() == [1]
    assert [(hit["_id"], reason) for hit, reason in rejected] == [("zabbix:2", "missing required field itemid")]
    # A type Arrow cannot read takes the slow path, which still names the document.
    batch, rejected = parse_points_page(_body([_source(1), _source(3, value="n/a")])).payload
    assert batch.num_rows == 1 and rejected[0][0]["_id"] == "zabbix:3"


def test_empty_page():
    from etl.lake.es_scan import parse_points_page

    assert parse_points_page(b'{"pit_id":"p"}').hits == 0
    assert parse_points_page(b'{"pit_id":"p","hits":{"hits":[]}}').hits == 0
