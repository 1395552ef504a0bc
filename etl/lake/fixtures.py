"""Point tables into Elasticsearch in the contract shape (doc = point fields + @timestamp,
_id = point_id, daily index per source): for tests, the benchmark and nothing else. The real
loader is etl's search store; this helper exists so the lake can be tested on its own."""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import pyarrow as pa

from etl.schema import point_id, points_index

# Mapping close to what the search store uses; only the fields verification aggregates on matter.
POINTS_MAPPING = {
    "dynamic": True,
    "properties": {
        "@timestamp": {"type": "date_nanos"},
        "source": {"type": "keyword"}, "host": {"type": "keyword"}, "host_name": {"type": "keyword"},
        "host_groups": {"type": "keyword"}, "itemid": {"type": "long"}, "key": {"type": "keyword"},
        "item_name": {"type": "keyword"}, "units": {"type": "keyword"}, "value_type": {"type": "byte"},
        "value": {"type": "double"}, "value_text": {"type": "keyword", "ignore_above": 1024},
        "clock": {"type": "long"}, "ns": {"type": "integer"}, "resolution": {"type": "keyword"},
        "value_min": {"type": "double"}, "value_max": {"type": "double"}, "value_count": {"type": "long"},
        "tags": {"properties": {"tag": {"type": "keyword"}, "value": {"type": "keyword"}}},
        "run_id": {"type": "keyword"},
    },
}


def timestamp_nanos(clock: int, ns: int) -> str:
    return f"{dt.datetime.fromtimestamp(clock, dt.timezone.utc):%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"


def point_docs(points: pa.Table, prefix: str) -> Iterator[dict]:
    """Bulk actions, one per point."""
    for row in points.to_pylist():
        day = dt.datetime.fromtimestamp(row["clock"], dt.timezone.utc).date()
        doc = dict(row)
        doc["@timestamp"] = timestamp_nanos(row["clock"], row["ns"])
        yield {"_op_type": "index", "_index": points_index(prefix, row["source"], day),
               "_id": point_id(row["source"], row["itemid"], row["clock"], row["ns"], row["resolution"]),
               "_source": doc}


def index_points(es, points: pa.Table, prefix: str, *, chunk_size: int = 5000, refresh: bool = True) -> int:
    from elasticsearch import helpers

    indices = {a["_index"] for a in _index_names(points, prefix)}
    for name in indices:
        if not es.indices.exists(index=name):
            es.indices.create(index=name, mappings=POINTS_MAPPING,
                              settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"})
    done = 0
    for start in range(0, points.num_rows, 50_000):
        chunk = points.slice(start, 50_000)
        ok, errors = helpers.bulk(es, point_docs(chunk, prefix), chunk_size=chunk_size, raise_on_error=True,
                                  stats_only=True)
        done += ok
    if refresh:
        for name in indices:
            es.indices.refresh(index=name)
    return done


def _index_names(points: pa.Table, prefix: str):
    seen = set()
    for source, clock in zip(points["source"].to_pylist(), points["clock"].to_pylist()):
        day = dt.datetime.fromtimestamp(clock, dt.timezone.utc).date()
        if (source, day) not in seen:
            seen.add((source, day))
            yield {"_index": points_index(prefix, source, day)}


def synthetic_points(source: str, day: dt.date, *, hosts: list[str], items_per_host: int,
                     points_per_item: int, run_id: str = "test-run", with_trends: bool = True,
                     first_itemid: int = 10_001) -> pa.Table:
    """Deterministic points of one UTC day in the point schema: every value type (float, unsigned,
    char, log, text with Unicode), sub-second ns, tags, and Zabbix trend rows (resolution 1h)."""
    import numpy as np

    from etl.schema import point_schema

    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    step = max(86400 // max(points_per_item, 1), 1)
    rng = np.random.default_rng(first_itemid)
    columns: dict[str, list] = {f.name: [] for f in point_schema()}
    texts = ["ok", "交易网关 正常", "ERROR: 连接超时 / timeout", "line\nwith\ttabs \"quoted\"", "😀 emoji"]
    itemid = first_itemid - 1
    for h, host in enumerate(hosts):
        for i in range(items_per_host):
            itemid += 1
            value_type = (0, 3, 1, 2, 4)[i % 5]
            n = points_per_item
            clocks = start + np.arange(n, dtype=np.int64) * step + (i % step if step > 1 else 0)
            ns = rng.integers(0, 1_000_000_000, n, dtype=np.int64)
            if value_type == 0:
                values = list(rng.normal(50, 20, n))
                texts_col = [None] * n
            elif value_type == 3:
                values = [float(v) for v in rng.integers(0, 2**40, n)]
                texts_col = [None] * n
            else:
                values = [None] * n
                texts_col = [texts[(k + i) % len(texts)] + f" #{k}" for k in range(n)]
            rows = {
                "source": [source] * n, "host": [host] * n, "host_name": [f"主机 {host}"] * n,
                "host_groups": [["Linux servers", f"组 {h % 3}"]] * n, "itemid": [itemid] * n,
                "key": [f"item.key[{i}]"] * n, "item_name": [f"Item {i} 指标"] * n,
                "units": ["%" if value_type == 0 else ""] * n, "value_type": [value_type] * n,
                "value": values, "value_text": texts_col, "clock": clocks.tolist(), "ns": ns.tolist(),
                "resolution": ["raw"] * n, "value_min": [None] * n, "value_max": [None] * n,
                "value_count": [None] * n, "tags": [[{"tag": "service", "value": "交易"}, {"tag": "env", "value": "prod"}]] * n,
                "run_id": [run_id] * n,
            }
            if with_trends and value_type in (0, 3):
                for hour in range(0, 24, 6):
                    clock = start + hour * 3600
                    for name, value in (("source", source), ("host", host), ("host_name", f"主机 {host}"),
                                        ("host_groups", ["Linux servers"]), ("itemid", itemid),
                                        ("key", f"item.key[{i}]"), ("item_name", f"Item {i} 指标"),
                                        ("units", "%"), ("value_type", value_type), ("value", 42.5 + hour),
                                        ("value_text", None), ("clock", clock), ("ns", 0), ("resolution", "1h"),
                                        ("value_min", 1.0 + hour), ("value_max", 99.0), ("value_count", 60),
                                        ("tags", []), ("run_id", run_id)):
                        rows[name].append(value)
            for name, values_list in rows.items():
                columns[name].extend(values_list)
    return pa.table(columns, schema=point_schema())
