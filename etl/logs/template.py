"""The index template for log documents, loaded from schemas/logs/index_template.json."""

from __future__ import annotations

import json
from pathlib import Path

from etl.errors import StoreError
from etl.logs.documents import logs_index_pattern

TEMPLATE_FILE = Path(__file__).resolve().parents[2] / "schemas" / "logs" / "index_template.json"


def template_body(prefix: str) -> dict:
    body = json.loads(TEMPLATE_FILE.read_text())
    body.pop("_comment", None)
    body["index_patterns"] = [logs_index_pattern(prefix)]
    # Prefixes nest (monetltest-logs-* vs monetltest-x-logs-*): ES refuses overlapping patterns of
    # equal priority, so a longer (more specific) prefix gets a higher priority.
    body["priority"] = 200 + len(prefix)
    body["_meta"] = {"owner": "monetl", "contract": "schemas/logs/fields.md"}
    return body


def ensure_template(client, prefix: str) -> str:
    name = f"{prefix}-logs"
    try:
        client.indices.put_index_template(name=name, **template_body(prefix))
    except Exception as exc:
        raise StoreError(f"cannot install index template {name}: {str(exc)[:300]}") from exc
    return name
