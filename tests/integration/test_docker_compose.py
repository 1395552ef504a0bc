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
    assert (es["host"], es["port"], es["password"]) == ("elasticsearch", 9200, "CHANGE-ME-elastic")
    zbx = json.loads(env["AIRFLOW_CONN_MONETL_ZABBIX"])
    assert zbx["host"] == "zabbix-web" and zbx["extra"]["path"] == "/api_jsonrpc.php"
    assert "zabbix-postgres:5432/zabbix" in json.loads(env["AIRFLOW_CONN_MONETL_ZABBIX_DB"])["extra"]["url"]
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
