"""What every monetl DAG shares: retry policy, the data window of a run, and Settings built from
Airflow connections (falling back to MONETL_* environment). Wiring only: the work is in etl/.

Connections read when defined (any may be absent):
  monetl_elasticsearch  host/port/schema, login+password or extra {"api_key": ..., "ca_certs": ...}
  monetl_zabbix         host/port/schema (+ extra {"path": "/api_jsonrpc.php", "token": ...}), login+password
  monetl_zabbix_db      a SQLAlchemy URL in extra {"url": ...} or the connection URI itself
  monetl_kcmm_db        same as monetl_zabbix_db
"""

from __future__ import annotations

import dataclasses
import datetime as dt

DEFAULT_ARGS = {
    "owner": "monitoring-ops",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=15),
    # Every task is bounded: a hung source or store fails the try (then retried) instead of
    # holding a worker slot. Tasks that need longer say so on their own @task.
    "execution_timeout": dt.timedelta(hours=1),
}


def window(context):
    """The run's [data_interval_start, data_interval_end) as an etl Window.

    Manual runs without a logical date have no interval: refuse them rather than guess "now"
    (use `monetl ingest --start --end` or `airflow backfill create` for a past window)."""
    from etl.errors import ConfigError
    from etl.window import Window

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or start == end:
        raise ConfigError("this run has no data interval (manual run without a logical date?); "
                          "trigger it with a logical date, or use `monetl ... --start --end`")
    return Window(start, end)


def _connection(conn_id: str):
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception:  # not defined: environment settings apply
        return None


def _url_of(conn, default_scheme: str) -> str:
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else (conn.schema or default_scheme)
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{conn.host}{port}"


def settings():
    """etl Settings with Airflow connections applied over the environment."""
    from etl.config import Secret, Settings

    base = Settings()
    changes: dict = {}
    es = _connection("monetl_elasticsearch")
    if es is not None:
        extra = es.extra_dejson or {}
        changes["es_url"] = _url_of(es, "http")
        if es.login:
            changes["es_user"] = es.login
            changes["es_password"] = Secret(es.password or "")
        if extra.get("api_key"):
            changes["es_api_key"] = Secret(extra["api_key"])
        if extra.get("ca_certs"):
            changes["es_ca_certs"] = extra["ca_certs"]
    zbx = _connection("monetl_zabbix")
    if zbx is not None:
        extra = zbx.extra_dejson or {}
        changes["zabbix_url"] = _url_of(zbx, "http") + extra.get("path", "/api_jsonrpc.php")
        if zbx.login:
            changes["zabbix_user"] = zbx.login
            changes["zabbix_password"] = Secret(zbx.password or "")
        if extra.get("token"):
            changes["zabbix_token"] = Secret(extra["token"])
    for conn_id, field in (("monetl_zabbix_db", "zabbix_db_url"), ("monetl_kcmm_db", "kcmm_db_url")):
        conn = _connection(conn_id)
        if conn is not None:
            url = (conn.extra_dejson or {}).get("url") or conn.get_uri()
            changes[field] = Secret(url)
    return dataclasses.replace(base, **changes) if changes else base
