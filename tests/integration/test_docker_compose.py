"""docker/docker-compose.yml validates with the real Compose CLI (installed by
docker/install-compose.sh) and keeps the stack's operating rules: healthchecks everywhere,
ports on 127.0.0.1 only, secrets only from the env file, pinned server versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "docker-compose.yml"
ENV_EXAMPLE = REPO / "docker" / ".env.example"


def compose_cli() -> list[str]:
    plugin_home = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    for candidate in (plugin_home / "docker-compose", shutil.which("docker-compose")):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    pytest.fail("no Docker Compose CLI: run docker/install-compose.sh (scripts/setup.sh does)")


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    # Only PATH/HOME from outside: a developer's exported secrets must not make the check pass.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
    return subprocess.run([*compose_cli(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file),
                           "config", "--format", "json"], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def stack() -> dict:
    proc = compose_config(ENV_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _is_init(service: dict) -> bool:
    return (service.get("labels") or {}).get("monetl.role") == "init"


def test_expected_services_present(stack):
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
            "airflow-postgres", "redis", "elasticsearch", "hdfs-namenode", "hdfs-datanode",
            "zabbix-server", "zabbix-web", "zabbix-postgres"} <= set(stack["services"])


def test_every_long_running_service_has_a_healthcheck(stack):
    for name, service in stack["services"].items():
        if _is_init(service):
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_init_jobs_are_awaited_to_completion(stack):
    init_jobs = {n for n, s in stack["services"].items() if _is_init(s)}
    assert init_jobs, "expected the set-up jobs (airflow-init, hdfs-init, ...)"
    awaited = {dep for s in stack["services"].values()
               for dep, cond in (s.get("depends_on") or {}).items()
               if cond.get("condition") == "service_completed_successfully"}
    assert init_jobs <= awaited
    for name in init_jobs:
        assert stack["services"][name].get("restart") in (None, "no"), f"{name} must run once"


def test_published_ports_are_loopback_only(stack):
    for name, service in stack["services"].items():
        for port in service.get("ports") or []:
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond localhost"


def test_pinned_versions(stack):
    assert stack["services"]["elasticsearch"]["image"].endswith("elasticsearch:8.19.21")
    assert "apache/airflow:3.3.2-python3.11" in (REPO / "docker" / "Dockerfile").read_text()
    assert stack["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_monetl_connections_wired(stack):
    env = stack["services"]["airflow-worker"]["environment"]
    es = json.loads(env["AIRFLOW_CONN_MONETL_ELASTICSEARCH"])
    # monetl's own least-privilege user, never the `elastic` superuser.
    assert (es["host"], es["port"], es["login"], es["password"]) == ("elasticsearch", 9200, "monetl",
                                                                     "CHANGE-ME-monetl-es")
    assert env["MONETL_ES_USER"] == "monetl" and env["MONETL_ES_PASSWORD"] == "CHANGE-ME-monetl-es"
    zbx = json.loads(env["AIRFLOW_CONN_MONETL_ZABBIX"])
    assert zbx["host"] == "zabbix-web" and zbx["extra"]["path"] == "/api_jsonrpc.php"
    # Extraction through the read-only role, never the Zabbix database owner.
    db_url = json.loads(env["AIRFLOW_CONN_MONETL_ZABBIX_DB"])["extra"]["url"]
    assert db_url.startswith("postgresql+psycopg2://monetl_ro:") and "zabbix-postgres:5432/zabbix" in db_url
    assert env["MONETL_ZABBIX_DB_URL"].startswith("postgresql+psycopg2://monetl_ro:")
    assert "AIRFLOW_CONN_MONETL_KCMM_DB" in env
    assert env["MONETL_LAKE_URL"].startswith("webhdfs://hdfs-namenode:9870/")


def test_missing_secrets_refuse_to_render(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = compose_config(empty)
    assert proc.returncode != 0
    assert "docker/.env" in proc.stderr


def test_env_example_holds_no_real_secrets():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            if any(word in key for word in ("PASSWORD", "SECRET", "FERNET")):
                assert value.startswith("CHANGE-ME"), f"{key} in .env.example must be a placeholder"


def test_roles_are_created_by_init_jobs_the_pipeline_waits_for(stack):
    services = stack["services"]
    es_init, db_init = services["es-init"], services["zabbix-db-init"]
    assert _is_init(es_init) and _is_init(db_init)
    es_script = " ".join(es_init["command"])
    assert "_security/role/monetl_app" in es_script and '"manage_index_templates"' in es_script
    assert "\"names\": [\"$${MONETL_ES_INDEX_PREFIX}-*\"]" in es_script
    assert "superuser" not in es_script and '"all"' not in es_script
    db_script = " ".join(db_init["command"])
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public TO monetl_ro" in db_script
    assert "default_transaction_read_only = on" in db_script
    for name in ("airflow-scheduler", "airflow-worker"):
        deps = services[name]["depends_on"]
        assert deps["es-init"]["condition"] == deps["zabbix-db-init"]["condition"] == "service_completed_successfully"


def test_no_secret_on_a_command_line(stack):
    """Passwords reach programs through the environment, stdin or 0600 files, never argv
    (visible to every local user in /proc/*/cmdline): no --password, no curl -u user:pass."""
    for name, service in stack["services"].items():
        parts = []
        for key in ("command", "entrypoint"):
            value = service.get(key) or []
            parts += value if isinstance(value, list) else [value]
        parts += (service.get("healthcheck") or {}).get("test") or []
        text = " ".join(str(p) for p in parts)
        assert "--password" not in text, name
        assert " -u " not in text and "--user " not in text, name
