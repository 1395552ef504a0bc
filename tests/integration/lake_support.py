"""Shared plumbing of the lake integration tests: the two storage backends and seeding ES."""

from __future__ import annotations

import dataclasses
import uuid

import pyarrow as pa

from etl.lake import fixtures
from etl.lake.storage import LocalStorage, open_storage
from etl.schema import points_index

# Points (incl. trend rows) sorted so that tables from ES, the lake and the generator compare 1:1.
FULL_ORDER = [("host", "ascending"), ("itemid", "ascending"), ("clock", "ascending"), ("ns", "ascending"),
              ("resolution", "ascending")]
NASTY_HOSTS = ["db-01", "../x", "a/b", "with space", "交易主机 01"]


def lake_settings(settings, prefix: str):
    return dataclasses.replace(settings, es_index_prefix=prefix)


def make_storage(kind: str, settings, tmp_path, request):
    if kind == "local":
        return LocalStorage(tmp_path / "lake"), f"file://{tmp_path / 'lake'}"
    request.getfixturevalue("hdfs_service")
    url = f"webhdfs://127.0.0.1:{settings.hdfs_http_port}/monetltest/lake/{uuid.uuid4().hex[:10]}"
    storage = open_storage(settings, url)
    request.addfinalizer(lambda: storage.delete(""))
    return storage, url


def seed(es, settings, source, day, *, hosts=NASTY_HOSTS, items_per_host=5, points_per_item=40) -> pa.Table:
    index = points_index(settings.es_index_prefix, source, day)
    es.indices.delete(index=index, ignore_unavailable=True)
    points = fixtures.synthetic_points(source, day, hosts=hosts, items_per_host=items_per_host,
                                       points_per_item=points_per_item)
    fixtures.index_points(es, points, settings.es_index_prefix)
    return points


def same_points(a: pa.Table, b: pa.Table) -> bool:
    return a.sort_by(FULL_ORDER).equals(b.sort_by(FULL_ORDER))
