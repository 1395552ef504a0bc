"""Index templates from schemas/es/, applied idempotently (PUT of the same body is a no-op change)."""

from __future__ import annotations

import copy
import functools
import json
import logging

from etl.config import Settings
from etl.errors import StoreError
from etl.schema import SCHEMAS_DIR

log = logging.getLogger(__name__)

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
    """Create or update the points index template; returns its name. A template applies at index
    creation, so fields added to the contract since (additive only) are also put on the existing
    daily indices: otherwise the strict mapping would refuse a new point for today's index."""
    name = points_template_name(settings)
    body = points_template(settings)
    try:
        client.indices.put_index_template(name=name, **body)
    except StoreError:  # Elasticsearch unreachable: that error already names the URL, once
        raise
    except Exception as exc:  # a connection error's text may carry the URL: redact it
        from etl.search.client import redact_url

        raise StoreError(f"cannot apply index template {name} at {redact_url(settings.es_url)}: "
                         f"{redact_url(str(exc))[:500]}") from None
    try:
        _add_missing_fields(client, body["index_patterns"][0], body["template"]["mappings"]["properties"])
    except Exception as exc:  # e.g. an index made under an older, conflicting template: its points
        # are refused per document and quarantined at load with Elasticsearch's reason
        log.info("existing %s indices keep their mapping: %s", body["index_patterns"][0], str(exc)[:300])
    return name


def _add_missing_fields(client, pattern: str, properties: dict) -> None:
    """Put on each existing index only the fields its mapping lacks. Indices of an older layout
    (e.g. v2, with doc values on host_name) keep their other fields as they are: re-sending those
    would conflict and fail the whole request, new fields included."""
    current = client.indices.get_mapping(index=pattern, allow_no_indices=True, ignore_unavailable=True,
                                         expand_wildcards="open")
    for index, body in current.items():
        have = (body.get("mappings") or {}).get("properties") or {}
        missing = {k: v for k, v in properties.items() if k not in have}
        if missing:
            client.indices.put_mapping(index=index, properties=missing)
