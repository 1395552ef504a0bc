"""Index templates from schemas/es/, applied idempotently (PUT of the same body is a no-op change)."""

from __future__ import annotations

import copy
import functools
import json

from etl.config import Settings
from etl.errors import StoreError
from etl.schema import SCHEMAS_DIR

POINTS_TEMPLATE = SCHEMAS_DIR / "es" / "points_template.json"


@functools.cache
def _points_template_file() -> dict:
    return json.loads(POINTS_TEMPLATE.read_text(encoding="utf-8"))


def points_template(settings: Settings) -> dict:
    """The template body for this prefix: patterns and replicas filled in, file comments dropped."""
    body = {k: v for k, v in copy.deepcopy(_points_template_file()).items() if not k.startswith("_doc")}
    body["index_patterns"] = [f"{settings.es_index_prefix}-points-*"]
    body["template"]["settings"]["index"]["number_of_replicas"] = settings.es_replicas
    return body


def points_template_name(settings: Settings) -> str:
    return f"{settings.es_index_prefix}-points"


def apply_points_template(client, settings: Settings) -> str:
    """Create or update the points index template; returns its name. Existing indices keep their
    mapping (a template applies at index creation), new daily indices get this one."""
    name = points_template_name(settings)
    try:
        client.indices.put_index_template(name=name, **points_template(settings))
    except StoreError:  # Elasticsearch unreachable: that error already names the URL, once
        raise
    except Exception as exc:  # a connection error's text may carry the URL: redact it
        from etl.search.client import redact_url

        raise StoreError(f"cannot apply index template {name} at {redact_url(settings.es_url)}: "
                         f"{redact_url(str(exc))[:500]}") from None
    return name
