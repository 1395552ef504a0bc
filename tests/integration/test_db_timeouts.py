"""A database statement that runs past `MONETL_DB_STATEMENT_TIMEOUT_SECONDS` is cancelled by the
real PostgreSQL server (the read-only Zabbix role and the KCMM owner both)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from etl.sources.kcmm_db import KcmmDbSource
from etl.sources.zabbix_db import ZabbixDbSource

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source_class", [KcmmDbSource, ZabbixDbSource])
def test_a_statement_past_the_timeout_is_cancelled_by_the_server(settings, postgres_service, source_class):
    cfg = dataclasses.replace(settings, db_statement_timeout_seconds=1)
    source = source_class(cfg)
    try:
        with source.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
    finally:
        source.close()
