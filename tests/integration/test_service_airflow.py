"""The local Airflow (standalone) starts, reports every component healthy and sees monetl's DAGs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from etl import services

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def airflow(settings):
    # Only this test starts Airflow; it costs a core while running, so a test-started instance is
    # stopped afterwards (one already running, e.g. for the demo, is left alone).
    was_running = services.get("airflow", settings).healthy()
    service = services.ensure("airflow", settings)
    yield service
    if not was_running:
        service.stop()


def test_components_report_healthy(airflow):
    report = airflow.health()
    for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        assert report[component]["status"] == "healthy", report


def test_api_server_is_loopback_and_serves_the_repo_dags(airflow):
    assert airflow.url.startswith("http://127.0.0.1:")
    # The generated admin password logs in and the DAG list comes from the repository's dags/.
    users = json.loads(airflow.password_file.read_text())
    request = urllib.request.Request(f"{airflow.url}/auth/token", method="POST",
                                     data=json.dumps({"username": "admin", "password": users["admin"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        token = json.loads(resp.read())["access_token"]
    # The dag-processor parses on its own schedule: wait for the first parse.
    from etl.services.base import wait_until

    def dag_ids() -> set[str]:
        req = urllib.request.Request(f"{airflow.url}/api/v2/dags?limit=100",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return {d["dag_id"] for d in json.loads(resp.read())["dags"]}

    repo_dags = {p.stem for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_")}
    wait_until(lambda: bool(dag_ids()), 180, "first DAG parsed by the dag-processor")
    # dag_id equals the file name, and no example DAGs are loaded.
    assert dag_ids() <= repo_dags


def test_ensure_again_reuses_it(airflow, settings):
    before = airflow.pid_file.read_text()
    assert services.ensure("airflow", settings).pid_file.read_text() == before


def test_metadata_is_in_postgres_and_the_hand_run_cli_reads_the_same_db(airflow, settings):
    """SQLite failed API calls with "database is locked" while the scheduler wrote (a CI run died
    on it): the metadata DB is `airflow` on the postgres service, and the venv's `airflow` run by
    hand with only AIRFLOW_HOME set (as the README's recovery steps do) reads that same DB."""
    import os
    import stat
    import subprocess
    import sys

    import psycopg2

    from etl.services.postgres import AIRFLOW_ROLE, Postgres

    pg = Postgres(settings)
    assert stat.S_IMODE(pg.airflow_password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(airflow.metadata_db_url_file.stat().st_mode) == 0o600
    from etl.services.base import wait_until

    def parsed_into_postgres() -> bool:
        with psycopg2.connect(host="127.0.0.1", port=settings.pg_port, user=AIRFLOW_ROLE, dbname=AIRFLOW_ROLE,
                              password=pg.airflow_password_file.read_text().strip(), connect_timeout=5) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM dag WHERE dag_id = 'zabbix_metrics'")
                return cur.fetchone()[0] == 1

    wait_until(parsed_into_postgres, 180, "zabbix_metrics in the PostgreSQL metadata DB")
    assert not list(airflow.airflow_home.glob("*.db"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(airflow.airflow_home)
    proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "list", "-o", "plain"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "zabbix_metrics" in proc.stdout
    assert not list(airflow.airflow_home.glob("*.db"))
