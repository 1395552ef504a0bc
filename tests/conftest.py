"""Test plumbing. Airflow settings must be in the environment before anything imports airflow,
so they are set at the top of this file. Service fixtures start or reuse the real services."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A fresh Airflow home (SQLite metadata DB) per pytest process, so parallel runs never share a DB.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="monetl-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Airflow's bundle DagBag puts the DAGs folder on sys.path (so DAGs can import dags/_monetl.py);
# the plain DagBag used in tests does not, so do it here.
sys.path.insert(0, str(REPO / "dags"))
# Tests share the local services with the demo, never its data: their own index prefix and lake.
os.environ.setdefault("MONETL_ES_INDEX_PREFIX", "monetltest")
# ... and push no health figures to Zabbix (the health tests turn it on for their own host).
os.environ.setdefault("MONETL_HEALTH_PUSH", "0")
os.environ.setdefault("MONETL_HEALTH_HOST", "monetltest-health")

import pytest  # noqa: E402

from etl import services  # noqa: E402
from etl.config import Settings, load  # noqa: E402


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real log samples in ../shared/data/logs (read-only)."""
    path = Path(os.environ.get("MONETL_SAMPLES_DIR", REPO.parent / "shared" / "data" / "logs"))
    if not path.is_dir():
        pytest.fail(f"log samples not found at {path}; set MONETL_SAMPLES_DIR")
    return path


@pytest.fixture(scope="session")
def postgres_service(settings):
    return services.ensure("postgres", settings)


@pytest.fixture(scope="session")
def zabbix_service(settings):
    return services.ensure("zabbix", settings)


@pytest.fixture(scope="session")
def elasticsearch_service(settings):
    return services.ensure("elasticsearch", settings)


@pytest.fixture(scope="session")
def hdfs_service(settings):
    return services.ensure("hdfs", settings)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite in this session's AIRFLOW_HOME), for dag.test()."""
    from airflow.utils import db

    db.resetdb()
    return os.environ["AIRFLOW_HOME"]
