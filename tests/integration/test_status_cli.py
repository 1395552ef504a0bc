"""`monetl status` on the real services, as an operator runs it: JSON output, the newest point and lag
measured from Elasticsearch, the quarantine backlog counted from the folder, exit 1 on FAIL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from etl.lake.fixtures import index_points
from etl.schema import point_schema
from etl.search.client import es_client

pytestmark = pytest.mark.integration

PREFIX = "testatus"
REPO = Path(__file__).resolve().parents[2]


def test_status_json_and_exit_code(settings, elasticsearch_service, zabbix_service, tmp_path):
    es = es_client(settings)
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    newest = int(dt.datetime.now(dt.timezone.utc).timestamp()) - 2 * 3600   # ingestion stopped 2 h ago
    row = {"source": "kcmm", "host": "desk-01", "host_name": None, "host_groups": ["kcmm"], "itemid": 1, "key": "k",
           "item_name": None, "units": "", "value_type": 0, "value": 1.0, "value_text": None, "clock": newest,
           "ns": 0, "resolution": "raw", "value_min": None, "value_max": None, "value_count": None, "tags": [],
           "run_id": "t"}
    index_points(es, pa.Table.from_pylist([row], schema=point_schema()), PREFIX)
    quarantine = tmp_path / "quarantine" / "points"
    quarantine.mkdir(parents=True)
    (quarantine / "run.jsonl").write_text('{"key": "a", "a": 1}\n{"key": "b", "a": 2}\n')
    env = {**os.environ, "PYTHONPATH": str(REPO), "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_HOME": str(tmp_path),
           "MONETL_QUARANTINE_DIR": str(tmp_path / "quarantine"), "MONETL_EXTRACTS_DIR": str(tmp_path / "x"),
           "MONETL_LAKE_URL": f"file://{tmp_path / 'lake'}", "MONETL_HEALTH_PUSH": "0"}
    try:
        proc = subprocess.run([sys.executable, "-m", "etl", "status", "--json", "--gaps-hours", "1"],
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    checks = {c["name"]: c for c in out["checks"]}
    assert out["overall"] == "FAIL"
    kcmm = checks["ingest kcmm"]
    stamp = dt.datetime.fromtimestamp(newest, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    assert kcmm["state"] == "FAIL" and f"newest point {stamp}" in kcmm["detail"]
    assert abs(kcmm["figures"]["monetl.ingest.lag[kcmm]"] - 7200) < 120
    assert "monetl backfill kcmm" in kcmm["next"]
    assert checks["ingest zabbix"]["state"] == "WARN"        # no points of that source under this prefix
    assert checks["quarantine"]["figures"] == {"monetl.quarantine.backlog": 2}
    assert checks["extracts"]["state"] == "WARN"
    assert set(checks) >= {"gaps zabbix", "lake zabbix", "log job trade_perf"}
