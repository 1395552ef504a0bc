"""The client factory for a secured cluster: TLS with a CA file, API key or basic auth, and no
credential in what an operator sees. The local test node has no security (minimal distribution),
so this checks the client configuration and a real failed connection, not a real TLS handshake."""

import base64
import logging

import pytest

from etl.config import Settings
from etl.search.client import es_client, redact_url

CA = "/etc/ssl/certs/ca-certificates.crt"


def _node(es):
    return list(es.transport.node_pool.all())[0]


def test_api_key_and_ca_file(monkeypatch):
    monkeypatch.setenv("MONETL_ES_URL", "https://127.0.0.1:1")
    monkeypatch.setenv("MONETL_ES_API_KEY", "c2VjcmV0LWtleQ==")
    monkeypatch.setenv("MONETL_ES_CA_CERTS", CA)
    es = es_client(Settings())
    assert es._headers["authorization"] == "ApiKey c2VjcmV0LWtleQ=="
    assert _node(es).config.scheme == "https" and _node(es).config.ca_certs == CA


def test_basic_auth_when_no_api_key(monkeypatch):
    monkeypatch.setenv("MONETL_ES_URL", "https://127.0.0.1:1")
    monkeypatch.setenv("MONETL_ES_USER", "monetl_writer")
    monkeypatch.setenv("MONETL_ES_PASSWORD", "hunter2")
    es = es_client(Settings())
    expected = base64.b64encode(b"monetl_writer:hunter2").decode()
    assert es._headers["authorization"] == f"Basic {expected}"


def test_a_failed_request_shows_no_credential(monkeypatch, caplog):
    monkeypatch.setenv("MONETL_ES_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("MONETL_ES_USER", "monetl_writer")
    monkeypatch.setenv("MONETL_ES_PASSWORD", "hunter2")
    settings = Settings()
    es = es_client(settings).options(request_timeout=1, max_retries=0)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(Exception) as failure:
            es.cluster.health()
    shown = str(failure.value) + repr(failure.value) + caplog.text + repr(settings) + str(settings.redacted())
    assert "hunter2" not in shown
    assert base64.b64encode(b"monetl_writer:hunter2").decode() not in shown


def test_credentials_in_a_url_are_redacted():
    assert redact_url("https://elastic:hunter2@es.internal:9200/x") == "https://***@es.internal:9200/x"
    assert redact_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"
