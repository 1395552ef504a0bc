"""Pure pieces of turning parsed lines into Elasticsearch log documents: the deterministic id,
the monthly index name, ECS nesting of dotted field names. No I/O here."""

from __future__ import annotations

import hashlib


def doc_id(dataset: str, host: str, timestamp: str, raw: bytes, occurrence: int = 0) -> str:
    """Same dataset + host + event time + raw bytes (+ which equal copy within the file) -> same
    _id. The file name and line number are not part of it, so a rotated file (`auth.log` read
    again as `auth.log.1` or `auth.log.1.gz`) and any re-load overwrite instead of duplicating,
    while equal lines of two hosts stay two documents. `occurrence` numbers equal lines at the
    same instant within one file (0 for the first), which real logs do write."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{dataset}\x00{host}\x00{timestamp}\x00{occurrence}\x00".encode())
    h.update(raw)
    return h.hexdigest()


def logs_index(prefix: str, dataset: str, timestamp: str) -> str:
    """`{prefix}-logs-{dataset, dots as dashes}-{YYYY.MM}` from an ISO UTC @timestamp."""
    return f"{prefix}-logs-{dataset.replace('.', '-')}-{timestamp[0:4]}.{timestamp[5:7]}"


def logs_index_pattern(prefix: str, dataset: str | None = None) -> str:
    return f"{prefix}-logs-{dataset.replace('.', '-')}-*" if dataset else f"{prefix}-logs-*"


def nest(flat: dict) -> dict:
    """{"event.action": "x", "@timestamp": t} -> {"event": {"action": "x"}, "@timestamp": t}: ECS
    objects in _source, as Beats/Logstash write them, so hits read the same as every ECS tool."""
    out: dict = {}
    for key, value in flat.items():
        if "." not in key:
            out[key] = value
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out
