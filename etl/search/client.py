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

    kwargs: dict = {
        "request_timeout": request_timeout,
        "retry_on_timeout": True,
        "max_retries": 5,
        # 429 and 5xx from an overloaded node are retried by the transport with backoff.
        "retry_on_status": (429, 502, 503, 504),
    }
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key.reveal()
    elif settings.es_user:
        kwargs["basic_auth"] = (settings.es_user, settings.es_password.reveal())
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    try:
        return Elasticsearch(settings.es_url, **kwargs)
    except Exception as exc:  # the client's own message may echo the URL: redact it
        raise StoreError(f"cannot create Elasticsearch client for {redact_url(settings.es_url)}: "
                         f"{redact_url(str(exc))}") from None
