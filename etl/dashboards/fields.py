"""What a panel needs from the index templates: the fields each query names (aggregations, Lucene
terms, template variables) and the mapping type each field has in schemas/es and schemas/logs."""

from __future__ import annotations

import json
import re

from etl.dashboards.datasources import ALL, ES_TYPE
from etl.schema import SCHEMAS_DIR

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
DATES = {"date", "date_nanos"}
TERMS_OK = {"keyword", "ip", "boolean", "constant_keyword"} | NUMERIC
FITS = {
    "terms": TERMS_OK, "date_histogram": DATES, "avg": NUMERIC, "sum": NUMERIC, "percentiles": NUMERIC,
    "max": NUMERIC | DATES, "min": NUMERIC | DATES, "cardinality": TERMS_OK | DATES, "query": None,
}
# field:value tokens of a Lucene query (dotted names, escaped brackets not included).
_LUCENE_FIELD = re.compile(r"(?<![\w.\\])([A-Za-z_@][\w.@]*):")


def _flatten(properties: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out.update(_flatten(spec["properties"], f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = spec.get("type", "object")
            for sub, subspec in (spec.get("fields") or {}).items():
                out[f"{prefix}{name}.{sub}"] = subspec.get("type")
    return out


def template_fields(template: str) -> dict[str, str]:
    if template == "points":
        mappings = json.loads((SCHEMAS_DIR / "es" / "points_template.json").read_text())["template"]["mappings"]
    elif template == "logs":
        mappings = json.loads((SCHEMAS_DIR / "logs" / "index_template.json").read_text())["template"]["mappings"]
    elif template == "findings":
        mappings = json.loads((SCHEMAS_DIR / "logs" / "findings_template.json").read_text())["index_template"]["mappings"]
    else:
        raise KeyError(template)
    return _flatten(mappings["properties"])


def lucene_fields(query: str) -> set[str]:
    # Quoted values may hold colons (URLs): drop them first.
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query or "")
    return set(_LUCENE_FIELD.findall(unquoted))


def used_fields(target: dict) -> list[tuple[str, str]]:
    """(field, use) pairs of one Elasticsearch target: use is the aggregation type or 'query'."""
    out = [(m["field"], m["type"]) for m in target.get("metrics", []) if m.get("field")]
    out += [(b["field"], b["type"]) for b in target.get("bucketAggs", []) if b.get("field")]
    out += [(f, "query") for f in lucene_fields(target.get("query", ""))]
    if target.get("timeField"):
        out.append((target["timeField"], "date_histogram"))
    return out


def variable_fields(variable: dict) -> list[tuple[str, str]]:
    body = json.loads(variable["query"]) if isinstance(variable.get("query"), str) and variable["query"].startswith("{") \
        else None
    if not body:
        return []
    return [(body["field"], "terms")] + [(f, "query") for f in lucene_fields(body.get("query", ""))]


def problems(dashboard: dict) -> list[str]:
    """Every field use that does not exist in, or does not fit, the index template of its datasource."""
    out = []

    def check(where: str, uid: str, pairs) -> None:
        ds = ALL[uid]
        fields = template_fields(ds.template)
        for name, use in pairs:
            kind = fields.get(name)
            if kind is None:
                out.append(f"{where}: field {name} not in the {ds.template} template")
            elif FITS.get(use) is not None and kind not in FITS[use]:
                out.append(f"{where}: {use} on {name} of type {kind}")

    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or {}
            if ds.get("type") == ES_TYPE:
                check(f"{dashboard['title']} / {panel['title']}", ds["uid"], used_fields(target))
    for variable in dashboard.get("templating", {}).get("list", []):
        ds = variable.get("datasource") or {}
        if ds.get("type") == ES_TYPE:
            check(f"{dashboard['title']} / ${variable['name']}", ds["uid"], variable_fields(variable))
    return out
