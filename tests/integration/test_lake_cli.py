"""`monetl compact`, `monetl lake query|ls|verify` and the demo hook, on the real Elasticsearch and a
local lake (the commands read MONETL_* settings, as an operator's shell would)."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from etl.cli import main
from etl.config import load
from etl.lake import reader, run_demo
from etl.schema import points_index
from etl.search.client import es_client
from etl.window import Window

from lake_support import same_points, seed

pytestmark = [pytest.mark.integration]

PREFIX = "monetltest-lakecli"


@pytest.fixture
def cfg(elasticsearch_service, tmp_path, monkeypatch):
    monkeypatch.setenv("MONETL_ES_INDEX_PREFIX", PREFIX)
    monkeypatch.setenv("MONETL_LAKE_URL", f"file://{tmp_path / 'lake'}")
    cfg = load()
    es = es_client(cfg)
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    yield cfg
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def test_compact_keep_then_query_ls_verify(cfg, tmp_path, capsys):
    es = es_client(cfg)
    day = dt.date(2026, 9, 20)
    points = seed(es, cfg, "kcmm", day, hosts=["trade-fe-01", "交易 前端"], items_per_host=3, points_per_item=12)
    assert main(["compact", "--source", "kcmm", "--day", str(day), "--keep", "--no-reconcile"]) == 0
    out = capsys.readouterr().out
    assert f"{points.num_rows} points of 6 items" in out and "index deleted=False" in out
    assert es.indices.exists(index=points_index(PREFIX, "kcmm", day))

    target = tmp_path / "out.parquet"
    assert main(["lake", "query", "--source", "kcmm", "--start", f"{day}T00:00Z", "--end", f"{day}T23:59:59Z",
                 "--format", "parquet", "--out", str(target)]) == 0
    assert same_points(pq.read_table(target), points)
    assert f"{points.num_rows} rows" in capsys.readouterr().out

    assert main(["lake", "query", "--source", "kcmm", "--start", str(day), "--end", str(day + dt.timedelta(days=1)),
                 "--resolution", "1h", "--host", "交易 前端", "--item", "item.key[0]", "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.strip().splitlines()
    assert csv_lines[0].startswith('"source","host"') and len(csv_lines) > 1
    assert all("交易 前端" in line and "item.key[0]" in line for line in csv_lines[1:])

    assert main(["lake", "ls", "--source", "kcmm"]) == 0
    assert f"{day}" in capsys.readouterr().out
    assert main(["lake", "verify", "--source", "kcmm", "--day", str(day)]) == 0
    assert "matches" in capsys.readouterr().out

    # Late data: verification fails, exit 2 with the reason, the index stays.
    from etl.lake import fixtures

    fixtures.index_points(es, fixtures.synthetic_points("kcmm", day, hosts=["late"], items_per_host=1,
                                                        points_per_item=1, with_trends=False, first_itemid=77_001),
                          PREFIX)
    assert main(["lake", "verify", "--source", "kcmm", "--day", str(day)]) == 2
    assert "does not match" in capsys.readouterr().err
    assert es.indices.exists(index=points_index(PREFIX, "kcmm", day))


def test_older_than_retention_and_demo_hook(cfg, capsys):
    es = es_client(cfg)
    today = dt.datetime.now(dt.timezone.utc).date()
    old, recent = today - dt.timedelta(days=cfg.short_term_days + 3), today - dt.timedelta(days=1)
    seed(es, cfg, "zabbix", old, hosts=["h"], items_per_host=2, points_per_item=4)
    seed(es, cfg, "zabbix", recent, hosts=["h"], items_per_host=2, points_per_item=4)

    lines = run_demo(cfg)  # the oldest day is past retention: compacted and deleted
    assert any("index deleted=True" in line for line in lines), lines
    assert not es.indices.exists(index=points_index(PREFIX, "zabbix", old))

    assert main(["compact", "--older-than-retention"]) == 0
    assert "nothing to compact" in capsys.readouterr().out
    lines = run_demo(cfg)  # now the oldest is the recent day: compacted, index kept
    assert any("delete=False" in line for line in lines), lines
    assert es.indices.exists(index=points_index(PREFIX, "zabbix", recent))
    assert reader.read_points(cfg, "zabbix", Window.day(recent)).num_rows > 0
