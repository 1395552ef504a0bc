"""The real PostgreSQL + Zabbix 6.0 services: idempotent start, and a value pushed to a trapper
item comes back through history.get exactly (value, clock, ns)."""

from __future__ import annotations

import contextlib
import time
import uuid

import psycopg2
import pytest

from etl import services
from etl.seed import delete_hosts, ensure_host, ensure_item, push_values, reload_config_cache, zabbix_api

pytestmark = pytest.mark.integration


def test_postgres_up_is_idempotent(postgres_service, settings):
    pid = postgres_service.pid()
    assert pid is not None
    again = services.ensure("postgres", settings)
    assert again.pid() == pid
    assert again.healthy()


@contextlib.contextmanager
def _read_only_cursor(settings):
    conn = psycopg2.connect(host="127.0.0.1", port=settings.pg_port, user="monetl_ro", password="monetl_ro",
                            dbname="zabbix")
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def test_read_only_role_reads_but_cannot_write(postgres_service, zabbix_service, settings):
    with _read_only_cursor(settings) as cur:
        cur.execute("SELECT username FROM users WHERE username = 'Admin'")
        assert cur.fetchone() == ("Admin",)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("DELETE FROM history WHERE itemid = -1")


def test_local_postgres_plans_no_parallel_workers(postgres_service, settings):
    # the 2 cores are shared with Elasticsearch and Zabbix: see etl/services/postgres.py start()
    with _read_only_cursor(settings) as cur:
        cur.execute("SHOW max_parallel_workers_per_gather")
        assert cur.fetchone() == ("0",)


def test_zabbix_up_is_idempotent(zabbix_service, settings):
    pid = int(zabbix_service.pid_file.read_text())
    again = services.ensure("zabbix", settings)
    assert int(again.pid_file.read_text()) == pid
    assert again.api_version().startswith("6.0.")


@pytest.fixture
def trapper_host(zabbix_service, settings):
    api = zabbix_api(settings)
    host = f"monetltest-svc-{uuid.uuid4().hex[:8]}"
    hostid = ensure_host(api, host, ["monetltest"], name=f"测试主机 {host}", tags={"env": "test"})
    yield api, host, hostid
    delete_hosts(api, settings, [host])
    api.logout()


def test_pushed_values_come_back_from_history_get(trapper_host, settings):
    api, host, hostid = trapper_host
    float_id = ensure_item(api, hostid, "test.float", 0, name="float item", units="%", tags={"component": "cpu"})
    text_id = ensure_item(api, hostid, "test.text", 4, name="文本 item")
    assert ensure_item(api, hostid, "test.float", 0, name="float item", units="%",
                       tags={"component": "cpu"}) == float_id  # found, not created twice
    reload_config_cache(settings)
    now = int(time.time())
    values = [(host, "test.float", 12.5, now - 120, 123456789), (host, "test.float", 99.25, now - 60, 7),
              (host, "test.text", "状态 OK", now - 30, 42)]
    assert push_values(settings, values) == {"processed": 3, "failed": 0, "total": 3}

    def fetch(itemid, value_type, expected):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = api.history.get(itemids=[itemid], history=value_type, time_from=now - 300,
                                   sortfield="clock", sortorder="ASC")
            if len(rows) >= expected:
                return rows
            time.sleep(0.5)
        return rows

    floats = fetch(float_id, 0, 2)
    assert [(r["clock"], r["ns"], float(r["value"])) for r in floats] == [
        (str(now - 120), "123456789", 12.5), (str(now - 60), "7", 99.25)]
    texts = fetch(text_id, 4, 1)
    assert [(r["clock"], r["ns"], r["value"]) for r in texts] == [(str(now - 30), "42", "状态 OK")]
    # The wrong value type answers an empty list, not an error: extraction must ask per type.
    assert api.history.get(itemids=[float_id], history=3, time_from=now - 300) == []


@pytest.mark.slow
def test_private_postgres_cluster_lifecycle():
    """A second, private cluster (own home and port) from nothing: initdb + schema, reuse, stop,
    stop again, restart with the data kept. The shared instance is never stopped by tests."""
    import dataclasses
    import shutil
    import socket
    import tempfile
    from pathlib import Path

    from etl.config import Settings
    from etl.services.postgres import Postgres

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Not pytest's tmp_path: other sessions reset /tmp/pytest-of-root to 0700 and lock postgres out.
    home = Path(tempfile.mkdtemp(prefix="monetl-pgtest-"))
    pg = Postgres(dataclasses.replace(Settings(), home=home, pg_port=port))
    try:
        assert not pg.healthy()
        pg.up()
        first = pg.pid()
        assert pg.healthy() and first is not None
        pg.up()
        assert pg.pid() == first
        pg.stop()
        assert not pg.healthy() and pg.pid() is None
        pg.stop()  # stopping a stopped cluster is fine
        pg.up()
        assert pg.healthy() and pg.pid() != first
        assert "1" == pg.psql("SELECT count(*) FROM users WHERE username = 'Admin'", db="zabbix").strip()
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)
