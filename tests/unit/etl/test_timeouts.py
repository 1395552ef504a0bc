"""Timeouts on the network calls that could otherwise hang a run: database connects and statements
(driver arguments), WebHDFS requests (a listener that accepts and never answers)."""

from __future__ import annotations

import dataclasses
import socket
import threading

import pytest

from etl.config import Settings
from etl.errors import StoreError
from etl.lake.storage import open_storage
from etl.sources.kcmm_db import KcmmDbSource


def test_postgres_sources_get_a_connect_and_a_statement_timeout():
    settings = dataclasses.replace(Settings(), db_connect_timeout_seconds=7, db_statement_timeout_seconds=42)
    source = KcmmDbSource(settings)
    assert source._timeouts() == {"connect_timeout": 7, "options": "-c statement_timeout=42000"}


def test_a_webhdfs_namenode_that_never_answers_fails_the_call():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # keep it open, say nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        settings = dataclasses.replace(Settings(), hdfs_timeout_seconds=1)
        storage = open_storage(settings, f"webhdfs://127.0.0.1:{port}/lake")
        with pytest.raises(StoreError, match="timed out"):
            storage.exists("points")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
