"""The one composite-aggregation pager: every bucket once, in order, across pages, asking with the
previous page's after_key; a short or empty page ends the walk."""

from etl.search.composite import composite_buckets


class PagedSearch:
    """Elasticsearch's composite paging over a fixed bucket list (a boundary fake): honours `size`
    and `after`, returns after_key on every non-empty page, as Elasticsearch does."""

    def __init__(self, buckets):
        self.buckets, self.bodies = buckets, []

    def __call__(self, aggs: dict) -> dict:
        self.bodies.append(aggs)
        (name, agg), = aggs.items()
        comp = agg["composite"]
        keys = [b["key"] for b in self.buckets]
        start = keys.index(comp["after"]) + 1 if "after" in comp else 0
        page = self.buckets[start:start + comp["size"]]
        found = {"buckets": page}
        if page:
            found["after_key"] = page[-1]["key"]
        return {"aggregations": {name: found}}


def buckets(n):
    return [{"key": {"host": f"h{i:02d}"}, "doc_count": i} for i in range(n)]


def test_walks_every_bucket_across_pages():
    search = PagedSearch(buckets(7))
    seen = list(composite_buckets(search, [{"host": {"terms": {"field": "host"}}}], size=3, name="hosts"))
    assert [b["key"]["host"] for b in seen] == [f"h{i:02d}" for i in range(7)]
    # Pages of 3, 3 and 1: the short third page is the last, no fourth request.
    assert [b["hosts"]["composite"].get("after") for b in search.bodies] == [None, {"host": "h02"}, {"host": "h05"}]
    assert all(b["hosts"]["composite"]["size"] == 3 for b in search.bodies)


def test_a_full_last_page_costs_one_empty_request():
    search = PagedSearch(buckets(6))
    assert len(list(composite_buckets(search, [], size=3))) == 6
    assert [b["groups"]["composite"].get("after") for b in search.bodies] == [None, {"host": "h02"}, {"host": "h05"}]


def test_sub_aggregations_and_no_data():
    search = PagedSearch([])
    sub = {"newest": {"max": {"field": "clock"}}}
    assert list(composite_buckets(search, [], sub, size=5, name="items")) == []
    assert search.bodies == [{"items": {"composite": {"size": 5, "sources": []}, "aggs": sub}}]
    # A missing index (ignore_unavailable) answers without aggregations: no buckets, no error.
    assert list(composite_buckets(lambda aggs: {}, [])) == []
