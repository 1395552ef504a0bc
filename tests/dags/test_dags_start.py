"""MONETL_DAGS_START sets where catch-up begins, read when a DAG file is parsed; a malformed value
falls back to the default and never makes a DAG file fail to import."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
UTC = dt.timezone.utc

# Parses the DAG files the way the dag-processor does (a fresh interpreter, so the env is read at
# import) and prints each DAG's start date and the import errors.
_PARSE = f"""
import json, sys
sys.path.insert(0, {str(DAGS_DIR)!r})
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS_DIR)!r})
print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                  "starts": {{d: bag.dags[d].start_date.isoformat() for d in bag.dags}}}}))
"""


def _parse_dags(start: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MONETL_DAGS_START"}
    if start is not None:
        env["MONETL_DAGS_START"] = start
    out = subprocess.run([sys.executable, "-c", _PARSE], env=env, cwd=DAGS_DIR, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("raw, expected", [
    (None, dt.datetime(2026, 11, 20, tzinfo=UTC)),
    ("", dt.datetime(2026, 11, 20, tzinfo=UTC)),
    ("2027-03-01", dt.datetime(2027, 3, 1, tzinfo=UTC)),
    ("2027-03-01T09:35", dt.datetime(2027, 3, 1, 9, 35, tzinfo=UTC)),
    ("2027-03-01T09:35:00+08:00", dt.datetime(2027, 3, 1, 1, 35, tzinfo=UTC)),
    ("not-a-date", dt.datetime(2026, 11, 20, tzinfo=UTC)),
    ("2027-13-45", dt.datetime(2026, 11, 20, tzinfo=UTC)),
])
def test_dags_start_reads_env_with_fallback(monkeypatch, raw, expected):
    import _builders

    if raw is None:
        monkeypatch.delenv("MONETL_DAGS_START", raising=False)
    else:
        monkeypatch.setenv("MONETL_DAGS_START", raw)
    start = _builders.dags_start()
    assert start == expected and start.utcoffset() == dt.timedelta(0)


def test_catchup_dags_start_at_the_configured_go_live_date():
    parsed = _parse_dags("2027-03-01T09:35")
    assert parsed["errors"] == {}
    for dag_id in ("zabbix_metrics", "kcmm_metrics", "log_illegal_access"):
        assert dt.datetime.fromisoformat(parsed["starts"][dag_id]) == dt.datetime(2027, 3, 1, 9, 35, tzinfo=UTC)
    # The no-catch-up DAGs keep their own fixed start.
    assert dt.datetime.fromisoformat(parsed["starts"]["reports"]) == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_malformed_start_keeps_every_dag_importable():
    parsed = _parse_dags("yesterday")
    assert parsed["errors"] == {}
    assert dt.datetime.fromisoformat(parsed["starts"]["zabbix_metrics"]) == dt.datetime(2026, 11, 20, tzinfo=UTC)
    assert len(parsed["starts"]) == len([p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_")])
