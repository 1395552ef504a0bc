"""One place that builds an Elasticsearch client from Settings: plain HTTP locally, TLS with a CA
file, API key or basic auth for a secured cluster. Credentials never reach a log or an error text."""

from __future__ import annotations

import re

from etl.config import Settings
from etl.errors import StoreError

_USERINFO = re.compile(r"//[^/@\s]+@")


def redact_url(url: str) -> str:
    """Drop user:password@ from a URL before it is printed."""
    return _USERINFO.sub("//***@", url)


def es_client(settings: Settings, request_timeout: float = 60.0):
    from elasticsearch import Elasticsearch

    from etl.search.retry import RetryingTransport, quiet_client_logs

    kwargs: dict = {
        "request_timeout": request_timeout,
        # Retries (429/5xx, connection errors, write blocks) with backoff and jitter live in
        # etl.search.retry; the client's own are immediate and log a traceback per attempt.
        # (RetryingTransport forces the client's max_retries to 0; passing 0 per request, as
        # `client.options(max_retries=0)` does, switches monetl's retries off too.)
        "transport_class": RetryingTransport,
        "retry_on_timeout": False,
        "retry_on_status": (),
    }
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key.reveal()
    elif settings.es_user:
        kwargs["basic_auth"] = (settings.es_user, settings.es_password.reveal())
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    try:
        client = Elasticsearch(settings.es_url, **kwargs)
    except Exception as exc:  # the client's own message may echo the URL: redact it
        raise StoreError(f"cannot create Elasticsearch client for {redact_url(settings.es_url)}: "
                         f"{redact_url(str(exc))}") from None
    quiet_client_logs()
    client.transport.configure(redact_url(settings.es_url), settings.es_retry_seconds, settings.es_block_wait_seconds)
    return client
