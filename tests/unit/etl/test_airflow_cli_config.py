"""The local Airflow's airflow.cfg names the command that prints the metadata DB URL (PostgreSQL), so
the venv's `airflow` run by hand sees the scheduler's database, not the SQLite file Airflow's
generated config names; everything else in the file is kept."""

from __future__ import annotations

from etl.config import load
from etl.services.airflow import Airflow

GENERATED = """[core]
dags_folder = /x/dags
fernet_key = abc=

[database]
# The SQLAlchemy connection string to the metadata database.
sql_alchemy_conn = sqlite:////x/airflow.db

# sql_alchemy_conn_async =
sql_alchemy_pool_size = 5

[logging]
base_log_folder = /x/logs
"""


def _service(tmp_path, monkeypatch) -> Airflow:
    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    service = Airflow(load())
    service.airflow_home.mkdir(parents=True)
    return service


def test_generated_sqlite_line_becomes_the_command_and_the_rest_is_kept(tmp_path, monkeypatch):
    service = _service(tmp_path, monkeypatch)
    cfg = service.airflow_home / "airflow.cfg"
    cfg.write_text(GENERATED)
    service.point_cli_at_metadata_db()
    text = cfg.read_text()
    assert "sqlite:" not in text
    assert f"sql_alchemy_conn_cmd = cat {service.metadata_db_url_file}\n" in text
    assert text.count("sql_alchemy_conn_cmd") == 1
    # only that line changed
    assert text.replace(f"sql_alchemy_conn_cmd = cat {service.metadata_db_url_file}",
                        "sql_alchemy_conn = sqlite:////x/airflow.db") == GENERATED
    service.point_cli_at_metadata_db()
    assert cfg.read_text() == text


def test_a_config_without_the_option_or_the_section_gets_it(tmp_path, monkeypatch):
    service = _service(tmp_path, monkeypatch)
    cfg = service.airflow_home / "airflow.cfg"
    cfg.write_text("[core]\nload_examples = False\n[database]\nsql_alchemy_pool_size = 5\n[api]\nport = 1\n")
    service.point_cli_at_metadata_db()
    text = cfg.read_text()
    assert text.index("sql_alchemy_conn_cmd") < text.index("[api]")
    cfg.write_text("[core]\nload_examples = False\n")
    service.point_cli_at_metadata_db()
    assert cfg.read_text().endswith(f"[database]\nsql_alchemy_conn_cmd = cat {service.metadata_db_url_file}\n")


def test_no_config_yet_writes_nothing(tmp_path, monkeypatch):
    service = _service(tmp_path, monkeypatch)
    service.point_cli_at_metadata_db()
    assert not (service.airflow_home / "airflow.cfg").exists()


def test_private_files_are_owner_only_from_the_start_and_replaced_whole(tmp_path):
    import os
    import stat

    from etl.services.support import write_private

    target = tmp_path / "secret.url"
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        write_private(target, "first")
        (tmp_path / ".secret.url.tmp").write_text("stale")
        os.chmod(tmp_path / ".secret.url.tmp", 0o666)
        write_private(target, "second")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / ".secret.url.tmp").exists()
