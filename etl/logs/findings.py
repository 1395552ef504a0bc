"""Where findings go: the Elasticsearch findings index (one document per fingerprint, merged
across windows of the same day by a read-merge-write, so re-runs never duplicate) and the lake
(one partition per job and UTC day, columns from schemas/logs/findings_template.json)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import pyarrow as pa

from etl.config import Settings
from etl.errors import ConfigError, StoreError
from etl.logs.jobs.common import SEVERITIES, Finding, Findings, findings_index
from etl.schema import arrow_type
from etl.window import UTC, Window

TEMPLATE_FILE = Path(__file__).resolve().parents[2] / "schemas" / "logs" / "findings_template.json"

@functools.lru_cache(maxsize=1)
def template() -> dict:
    try:
        return json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read findings template {TEMPLATE_FILE}: {exc}") from exc


def lake_schema() -> pa.Schema:
    return pa.schema([pa.field(name, arrow_type(spec)) for name, spec in template()["lake_columns"]])


def ensure_index(es, prefix: str) -> str:
    """Index template + index, idempotent."""
    name = findings_index(prefix)
    body = template()["index_template"]
    try:
        # A longer prefix gets a higher priority so nested test prefixes never tie (ES refuses ties).
        es.indices.put_index_template(name=name, index_patterns=[name], template=body, priority=300 + len(prefix),
                                      meta={"owner": "monetl log jobs"})
        if not es.indices.exists(index=name):
            es.indices.create(index=name)
        else:  # an index made by an older template gets the newer fields (additive only)
            es.indices.put_mapping(index=name, properties=body["mappings"]["properties"])
    except Exception as exc:
        if "resource_already_exists" in str(exc):
            return name
        raise StoreError(f"cannot create findings index {name}: {exc}") from exc
    return name


def _now_iso() -> str:
    return dt.datetime.now(tz=UTC).isoformat()


def _minute(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def merge_minutes(stored: dict, new: dict, covered_start: str, covered_end: str) -> dict:
    """Stored per-minute event counts updated by a run that read [covered_start, covered_end):
    each minute wholly inside it takes the run's count (0 when absent), a minute cut by its edge
    keeps the larger count. So re-running any windows over the same events gives the same counts."""
    start, end = _instant(covered_start), _instant(covered_end)
    out = {}
    for minute, n in stored.items():
        at = _minute(minute)
        if at >= start and at + dt.timedelta(minutes=1) <= end:
            continue  # wholly re-read: the run's number (or none) replaces it
        out[minute] = max(n, new.get(minute, 0)) if at < end and at + dt.timedelta(minutes=1) > start else n
    for minute, n in new.items():
        out[minute] = max(out.get(minute, 0), n)
    return dict(sorted(out.items()))


def merge(stored: dict | None, doc: dict, now: str) -> dict:
    """The stored document of a fingerprint updated with one window's finding: worst severity,
    earliest first_seen, latest last_seen, a bounded union of evidence ids; notification state is
    kept. The count: with per-minute event counts (minute_counts) their sum after merge_minutes, so
    any re-run converges; otherwise one count per window (a re-run of a window replaces its own)."""
    if stored is None:
        first = doc | {"first_detected_at": now, "updated_at": now, "windows_seen": 1,
                       "window_counts": {doc["window"]["start"]: doc["count"]}}
        if doc.get("minute_counts"):
            first["count"] = int(sum(doc["minute_counts"].values()))
        return first
    merged = dict(stored)
    window_counts = dict(stored.get("window_counts") or {})
    window_counts[doc["window"]["start"]] = doc["count"]
    rank = SEVERITIES.index
    seen = [t for t in (stored.get("first_seen"), doc["first_seen"]) if t]
    last = [t for t in (stored.get("last_seen"), doc["last_seen"]) if t]
    evidence = list(stored.get("evidence_ids") or [])
    evidence += [e for e in doc["evidence_ids"] if e not in evidence]
    count = int(sum(window_counts.values()))
    minutes = None
    if doc.get("minute_counts") or stored.get("minute_counts"):
        covered = doc.get("covered") or doc["window"]
        minutes = merge_minutes(stored.get("minute_counts") or {}, doc.get("minute_counts") or {},
                                covered["start"], covered["end"])
        count = int(sum(minutes.values()))
    merged.update({
        "severity": max(stored.get("severity", "low"), doc["severity"], key=rank),
        "first_seen": min(seen, key=_instant) if seen else None,
        "last_seen": max(last, key=_instant) if last else None,
        "window_counts": window_counts, "windows_seen": len(window_counts),
        "count": count, "evidence_ids": evidence[:10],
        "counts": doc["counts"], "details": doc["details"], "message": doc["message"], "window": doc["window"],
        "updated_at": now,
    })
    if minutes is not None:
        merged["minute_counts"] = minutes
    return merged


def continuations(es, name: str, findings: list[Finding]) -> None:
    """Give each finding that continues a stored one (same key, events within the rule's span of
    the stored first..last seen, e.g. an attack running past midnight) the stored id, so one
    incident stays one finding whatever the windows. One search per run."""
    candidates = [f for f in findings if f.first_seen is not None]
    if not candidates:
        return
    keys = sorted({f.key for f in candidates})
    try:
        result = es.search(index=name, size=min(10_000, 20 * len(keys)), ignore_unavailable=True,
                           allow_no_indices=True, query={"bool": {"filter": [{"terms": {"key": keys}}]}},
                           source=["key", "first_seen", "last_seen"])
    except Exception as exc:
        raise StoreError(f"cannot read stored findings of {name}: {exc}") from exc
    stored: dict[str, list] = {}
    for hit in result["hits"]["hits"]:
        src = hit["_source"]
        if src.get("first_seen") and src.get("last_seen"):
            stored.setdefault(src["key"], []).append((_instant(src["first_seen"]), _instant(src["last_seen"]), hit["_id"]))
    for f in candidates:
        own = f.fingerprint
        same = sorted(stored.get(f.key, []))
        if any(_id == own for _, _, _id in same):
            continue
        last_f = f.last_seen or f.first_seen
        for first, last, _id in same:
            if first - f.span <= last_f and f.first_seen <= last + f.span:
                f.stored_id = _id
                break


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def index_findings(es, prefix: str, findings: list[Finding], attempts: int = 3) -> int:
    """Upsert findings by fingerprint (read, merge in Python, write guarded by seq_no so a
    concurrent writer makes us re-read instead of losing its update). Returns documents written.
    Read-merge-write because the minimal Elasticsearch distribution has no scripting."""
    if not findings:
        return 0
    name = ensure_index(es, prefix)
    continuations(es, name, findings)
    # Several findings of one run can share a fingerprint only across windows; keep the order.
    pending: dict[str, list[dict]] = {}
    for f in findings:
        pending.setdefault(f.fingerprint, []).append(f.to_doc())
    for _ in range(attempts):
        docs = es.mget(index=name, ids=list(pending))["docs"]
        operations = []
        now = _now_iso()
        for d in docs:
            stored = d["_source"] if d.get("found") else None
            for doc in pending[d["_id"]]:
                stored = merge(stored, doc, now)
            if d.get("found"):
                operations.append({"index": {"_index": name, "_id": d["_id"], "if_seq_no": d["_seq_no"],
                                             "if_primary_term": d["_primary_term"]}})
            else:
                operations.append({"create": {"_index": name, "_id": d["_id"]}})
            operations.append(stored)
        result = es.bulk(operations=operations, refresh="wait_for")
        conflicts, failed = [], []
        for item in result["items"]:
            outcome = next(iter(item.values()))
            if outcome.get("status") == 409:
                conflicts.append(outcome["_id"])
            elif outcome.get("error"):
                failed.append(outcome)
        if failed:
            first = failed[0]
            raise StoreError(f"{len(failed)} findings not written to {name}; first {first.get('_id')}: "
                             f"{first['error'].get('type')}: {first['error'].get('reason')}")
        if not conflicts:
            return len(findings)
        pending = {fp: pending[fp] for fp in conflicts}
    raise StoreError(f"findings {sorted(pending)[:3]} in {name} kept changing under concurrent writers; re-run the job")


def table(findings: Findings) -> pa.Table:
    """One Arrow table with the window's findings and its metric rows (lake_columns)."""
    schema = lake_schema()
    rows = []
    for f in findings.findings:
        rows.append({"job": f.job, "rule": f.rule, "severity": f.severity, "source": f.source, "target": f.target,
                     "count": int(f.count), "counts_json": json.dumps(f.counts, sort_keys=True),
                     "details_json": json.dumps(f.details, sort_keys=True, default=str), "message": f.message,
                     "first_seen": f.first_seen, "last_seen": f.last_seen, "evidence_ids": list(f.evidence_ids),
                     "fingerprint": f.fingerprint, "window_start": f.window.start, "window_end": f.window.end})
    for m in findings.metrics:
        rows.append({k: v for k, v in m.items() if not k.startswith("_")}
                    | {"count": m["volume"], "evidence_ids": list(m.get("_evidence", []))})
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def superseded(existing: pa.Table, window: Window):
    """Rows a run over `window` replaces: those of runs whose window lies inside it (the same
    window re-run, or smaller windows a larger re-run covers) and minute rows of its minutes."""
    import pyarrow.compute as pc

    ts = existing.schema.field("window_start").type
    start, end = pa.scalar(window.start, ts), pa.scalar(window.end, ts)
    inside = pc.and_(pc.greater_equal(existing["window_start"], start), pc.less_equal(existing["window_end"], end))
    minute = pc.and_(pc.equal(existing["rule"], "minute_metrics"),
                     pc.and_(pc.greater_equal(existing["bucket"], start), pc.less(existing["bucket"], end)))
    return pc.fill_null(pc.or_(pc.fill_null(inside, False), pc.fill_null(minute, False)), False)


def write_lake(settings: Settings, findings: Findings) -> list[str]:
    """Merge the window's rows into the day partition {lake}/findings/job=<job>/date=<day>/ of the
    window's start day: rows this run supersedes (see `superseded`) are replaced, other windows'
    rows kept, and the partition is republished whole (etl.lake replaces partitions atomically)."""
    from etl import lake

    merged = _merged_day(settings, findings)
    return [lake.write_findings(settings, findings.job, *merged)] if merged else []


def write_lake_many(settings: Settings, results: list[Findings]) -> list[str]:
    """write_lake for many windows (e.g. one job over many days) with one publish step per job:
    the day partitions staged under one run, then moved into place together. A day met twice is
    published before its second window merges with it."""
    from etl.lake.findings import write_findings_many

    written: list[str] = []
    pending: dict[str, dict[dt.date, pa.Table]] = {}
    for findings in results:
        day = findings.window.start.date()
        if day in pending.get(findings.job, {}):
            written += write_findings_many(settings, findings.job, pending.pop(findings.job))
        merged = _merged_day(settings, findings)
        if merged:
            pending.setdefault(findings.job, {})[merged[0]] = merged[1]
    for job, tables in pending.items():
        written += write_findings_many(settings, job, tables)
    return written


def _merged_day(settings: Settings, findings: Findings) -> tuple[dt.date, pa.Table] | None:
    """(day, the day partition's rows after this window's run), or None when nothing changes."""
    import pyarrow.compute as pc

    from etl import lake

    new = table(findings)
    day = findings.window.start.date()
    schema = lake_schema()
    existing = lake.read_findings(settings, findings.job, Window.day(day))
    before = existing.num_rows
    if existing.num_rows:
        missing = [n for n in schema.names if n not in existing.column_names]
        if missing:
            raise StoreError(f"lake findings of {findings.job} {day} lack columns {missing}: not written over")
        existing = existing.select(schema.names).cast(schema)
        existing = existing.filter(pc.invert(superseded(existing, findings.window)))
    if new.num_rows == 0 and existing.num_rows == before:
        return None  # nothing found now and nothing of this window to take back
    return day, (pa.concat_tables([existing, new]) if before else new)


def search_findings(es, prefix: str, job: str | None = None, min_severity: str = "low",
                    since: dt.datetime | None = None, size: int = 500) -> list[dict]:
    """Stored findings (newest first) for the CLI and notification; small by construction."""
    name = findings_index(prefix)
    wanted = list(SEVERITIES[SEVERITIES.index(min_severity):])
    filters: list[dict] = [{"terms": {"severity": wanted}}]
    if job:
        filters.append({"term": {"job": job}})
    if since:
        filters.append({"range": {"updated_at": {"gte": since.isoformat()}}})
    result = es.search(index=name, query={"bool": {"filter": filters}}, size=size,
                       sort=[{"updated_at": {"order": "desc"}}], ignore_unavailable=True, allow_no_indices=True)
    return [h["_source"] for h in result["hits"]["hits"]]
