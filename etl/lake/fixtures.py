"""Point tables into Elasticsearch for tests and the benchmark, exactly as the store does it: the
store's index template (schemas/es/points_template.json) and its document builder and bulk loader
(etl.search), so the lake is tested against the documents production writes."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from etl.errors import StoreError


def index_points(es, points: pa.Table, prefix: str, *, refresh: bool = True) -> int:
    """Index `points` under `prefix` (daily index per source); returns the documents loaded."""
    from etl.config import Settings
    from etl.search import load, templates

    templates.apply_points_template(es, Settings(es_index_prefix=prefix))
    loaded, indices = 0, set()
    for batch in points.to_batches(max_chunksize=50_000):
        docs = load.documents(batch, prefix)
        result = load.bulk(es, docs)
        if result.failed:
            row, reason = next(iter(result.failed.items()))
            raise StoreError(f"{len(result.failed)} test points refused, e.g. row {row}: {reason}")
        loaded += result.loaded
        indices.update(docs.index_set())
    if refresh:
        for name in indices:
            es.indices.refresh(index=name)
    return loaded


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
                # exact unsigned values, the top of the range included (2^64-1 is not a float64)
                exact = [int(v) for v in rng.integers(0, 2**40, n)]
                exact[: min(n, 2)] = [2**64 - 1, 2**63 + 1][: min(n, 2)]
                values = [float(v) for v in exact]
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
                "value_uint": exact if value_type == 3 else [None] * n,
                "log_timestamp": [int(c) - 1 for c in clocks] if value_type == 2 else [None] * n,
                "log_source": ["Security"] * n if value_type == 2 else [None] * n,
                "log_severity": [k % 10 for k in range(n)] if value_type == 2 else [None] * n,
                "log_eventid": [4624 + k % 2 for k in range(n)] if value_type == 2 else [None] * n,
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
                                        ("tags", []), ("run_id", run_id), ("value_uint", None),
                                        ("log_timestamp", None), ("log_source", None), ("log_severity", None),
                                        ("log_eventid", None)):
                        rows[name].append(value)
            for name, values_list in rows.items():
                columns[name].extend(values_list)
    return pa.table(columns, schema=point_schema())
