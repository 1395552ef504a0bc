"""Where findings go: the Elasticsearch findings index (one document per fingerprint, merged
across windows by a read-merge-write, so re-runs never duplicate) and the lake (one row per
fingerprint, in the partition of its job and first event's UTC day, columns from
schemas/logs/findings_template.json)."""

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
    # The description (counts, details, message) comes from the run that saw the most of the
    # incident: with event counts, a run seeing fewer events than stored (a smaller or shifted
    # window re-run) keeps the stored one, so re-runs in any order end with the same text.
    describe = minutes is None or doc.get("minute_counts") and int(doc["count"]) >= int(stored.get("count") or 0)
    described = doc if describe else stored
    merged.update({
        "severity": max(stored.get("severity", "low"), doc["severity"], key=rank),
        "first_seen": min(seen, key=_instant) if seen else None,
        "last_seen": max(last, key=_instant) if last else None,
        "window_counts": window_counts, "windows_seen": len(window_counts),
        "count": count, "evidence_ids": evidence[:10],
        "counts": described.get("counts", doc["counts"]), "details": described.get("details", doc["details"]),
        "message": described.get("message", doc["message"]), "window": doc["window"],
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
    merged_docs: dict[str, dict] = {}
    for f in findings:
        pending.setdefault(f.fingerprint, []).append(f.to_doc())
    for _ in range(attempts):
        docs = es.mget(index=name, ids=list(pending))["docs"]
        operations = []
        written: dict[str, dict] = {}
        now = _now_iso()
        for d in docs:
            stored = d["_source"] if d.get("found") else None
            for doc in pending[d["_id"]]:
                stored = merge(stored, doc, now)
            written[d["_id"]] = stored
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
        for fp, doc in written.items():
            if fp not in conflicts:
                merged_docs[fp] = doc
        if not conflicts:
            for f in findings:
                f.stored = merged_docs.get(f.fingerprint)
            return len(findings)
        pending = {fp: pending[fp] for fp in conflicts}
    raise StoreError(f"findings {sorted(pending)[:3]} in {name} kept changing under concurrent writers; re-run the job")


def row_day(row: dict) -> dt.date:
    """The lake partition of one row: a finding's first event (UTC day, as Finding.day; for a finding
    merged across runs the earliest first_seen), a metric row's bucket, else its window's start."""
    at = row.get("first_seen") if row.get("fingerprint") else None
    at = at or row.get("bucket") or row.get("window_start")
    return at.astimezone(UTC).date()


def _when(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return _instant(value)


def _finding_row(f: Finding) -> dict:
    """A finding's lake row; with the merged document index_findings stored (f.stored), the
    incident's converged first/last seen, count, severity and evidence, as Elasticsearch holds it."""
    doc = f.stored or {}
    return {"job": f.job, "rule": f.rule, "severity": doc.get("severity", f.severity), "source": f.source,
            "target": f.target, "count": int(doc.get("count", f.count)),
            "counts_json": json.dumps(doc.get("counts", f.counts), sort_keys=True),
            "details_json": json.dumps(doc.get("details", f.details), sort_keys=True, default=str),
            "message": doc.get("message", f.message),
            "first_seen": _when(doc.get("first_seen")) or f.first_seen,
            "last_seen": _when(doc.get("last_seen")) or f.last_seen,
            "evidence_ids": list(doc.get("evidence_ids") or f.evidence_ids),
            "fingerprint": f.fingerprint, "window_start": f.window.start, "window_end": f.window.end}


def _merge_rows(old: dict | None, new: dict, authoritative: bool) -> dict:
    """A fingerprint's lake row after this run: without the merged Elasticsearch document the lake
    row itself is the memory of earlier runs (earliest first_seen, latest last_seen, worst severity,
    the larger count and its description), so a later run over a grown span replaces the row and a smaller one never
    shrinks it."""
    if old is None or authoritative:
        return new
    rank = SEVERITIES.index
    merged = dict(new)
    firsts = [t for t in (old.get("first_seen"), new.get("first_seen")) if t]
    lasts = [t for t in (old.get("last_seen"), new.get("last_seen")) if t]
    merged["first_seen"] = min(firsts) if firsts else None
    merged["last_seen"] = max(lasts) if lasts else None
    merged["severity"] = max(old.get("severity") or "low", new["severity"], key=rank)
    merged["count"] = max(int(old.get("count") or 0), int(new["count"]))
    if int(new["count"]) < int(old.get("count") or 0):  # as merge(): the fuller run's description
        merged.update({k: old.get(k) for k in ("counts_json", "details_json", "message")})
    evidence = list(old.get("evidence_ids") or [])
    merged["evidence_ids"] = (evidence + [e for e in new["evidence_ids"] if e not in evidence])[:10]
    return merged


def table(findings: Findings) -> pa.Table:
    """One Arrow table with the window's findings and its metric rows (lake_columns)."""
    return _rows_table(_rows(findings))


def _rows(findings: Findings) -> list[dict]:
    rows = [_finding_row(f) for f in findings.findings]
    for m in findings.metrics:
        rows.append({k: v for k, v in m.items() if not k.startswith("_")}
                    | {"count": m["volume"], "evidence_ids": list(m.get("_evidence", []))})
    return rows


def _rows_table(rows: list[dict]) -> pa.Table:
    schema = lake_schema()
    return pa.table({name: [r.get(name) for r in rows] for name in schema.names}, schema=schema)


def superseded(existing: pa.Table, window: Window):
    """Rows a run over `window` takes back: those of runs whose window lies inside it (the same
    window re-run, or smaller windows a larger re-run covers) and minute rows of its minutes. Rows
    of the run's own fingerprints are replaced too (see `merged_partitions`)."""
    import pyarrow.compute as pc

    ts = existing.schema.field("window_start").type
    start, end = pa.scalar(window.start, ts), pa.scalar(window.end, ts)
    inside = pc.and_(pc.greater_equal(existing["window_start"], start), pc.less_equal(existing["window_end"], end))
    minute = pc.and_(pc.equal(existing["rule"], "minute_metrics"),
                     pc.and_(pc.greater_equal(existing["bucket"], start), pc.less(existing["bucket"], end)))
    return pc.fill_null(pc.or_(pc.fill_null(inside, False), pc.fill_null(minute, False)), False)


def _longest_span(job: str) -> dt.timedelta:
    """The longest look-back of the job's rules (a day when the rules cannot say)."""
    from etl.logs.jobs.common import load_rules, rule_span

    try:
        section = load_rules().get(job, {})
    except ConfigError:
        return dt.timedelta(days=1)
    spans = [rule_span(rule) for rule in section.values() if isinstance(rule, dict)]
    return max(spans, default=dt.timedelta(0))


def days_to_read(findings: Findings, rows: list[dict]) -> set[dt.date]:
    """Partitions a run may have to change: each new row's day; every day a row of one of its
    fingerprints can sit in (an earlier run's first_seen lies between the merged first and last
    seen); the window's days, reaching back by the job's longest look-back (a taken-back row of
    a window inside this one is dated by its first event, which a look-back may put before the
    window's start)."""
    days = set(Window(findings.window.start - _longest_span(findings.job), findings.window.end).days())
    for r in rows:
        days.add(row_day(r))
        if r.get("fingerprint") and r.get("first_seen") and r.get("last_seen"):
            first, last = sorted((r["first_seen"], r["last_seen"]))
            days.update(Window(first, last + dt.timedelta(microseconds=1)).days())
    return days


def merged_partitions(findings: Findings, read_day) -> dict[dt.date, pa.Table]:
    """The day partitions a run changes, {day: rows after the run}. `read_day(day)` gives a
    partition's current rows (None when there is none). Rows are dated by event time (row_day);
    a fingerprint has one row in the whole job: an earlier run's row of it, wherever it sits, is
    merged and replaced, so re-runs over any windows converge to the same rows."""
    import pyarrow.compute as pc

    schema = lake_schema()
    rows = _rows(findings)
    authoritative = {f.fingerprint for f in findings.findings if f.stored is not None}
    own = {r["fingerprint"] for r in rows if r.get("fingerprint")}
    old_rows: dict[str, dict] = {}
    kept: dict[dt.date, pa.Table] = {}
    changed: set[dt.date] = set()
    for day in sorted(days_to_read(findings, rows)):
        existing = read_day(day)
        if existing is None or existing.num_rows == 0:
            continue
        missing = [n for n in schema.names if n not in existing.column_names]
        if missing:
            raise StoreError(f"lake findings of {findings.job} {day} lack columns {missing}: not written over")
        existing = existing.select(schema.names).cast(schema)
        mine = pc.fill_null(pc.is_in(existing["fingerprint"], value_set=pa.array(sorted(own), pa.string())), False)
        for r in existing.filter(mine).to_pylist():
            old = old_rows.get(r["fingerprint"])
            old_rows[r["fingerprint"]] = _merge_rows(old, r, False) if old else r
        drop = pc.or_(mine, superseded(existing, findings.window))
        left = existing.filter(pc.invert(drop))
        kept[day] = left
        if left.num_rows != existing.num_rows:
            changed.add(day)
    added: dict[dt.date, list[dict]] = {}
    for r in rows:
        fp = r.get("fingerprint")
        r = _merge_rows(old_rows.get(fp), r, fp in authoritative) if fp else r
        added.setdefault(row_day(r), []).append(r)
    out = {}
    for day in sorted(changed | set(added)):
        parts = [t for t in (kept.get(day), _rows_table(added[day]) if day in added else None) if t is not None]
        out[day] = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return out


def _lake_reader(settings: Settings, job: str, pending: dict[dt.date, pa.Table]):
    """read_day for merged_partitions: a partition staged by an earlier window of the same batch
    wins over the lake; the job's published days are listed once, so a long window's empty days
    cost nothing."""
    from etl import lake
    from etl.lake import layout
    from etl.lake.storage import open_storage

    storage = open_storage(settings)
    published = {name.split("=", 1)[1] for name in storage.list(layout.join(layout.FINDINGS, f"job={layout.encode_value(job)}"))
                 if name.startswith("date=")}

    def read_day(day: dt.date) -> pa.Table | None:
        if day in pending:
            return pending[day]
        if f"{day:%Y-%m-%d}" not in published:
            return None
        return lake.read_findings(settings, job, Window.day(day), storage=storage)

    return read_day


def write_lake(settings: Settings, findings: Findings) -> list[str]:
    """Merge the window's rows into the job's day partitions {lake}/findings/job=<job>/date=<day>/,
    each row under its event day (see merged_partitions); the changed partitions are republished
    whole, in one publish step (etl.lake replaces partitions atomically)."""
    return write_lake_many(settings, [findings])


def write_lake_many(settings: Settings, results: list[Findings]) -> list[str]:
    """write_lake for many windows (e.g. one job over many days) with one publish step per job:
    each window merges with the partitions the windows before it changed, then all are staged
    under one run and moved into place together."""
    from etl.lake.findings import write_findings_many

    written: list[str] = []
    pending: dict[str, dict[dt.date, pa.Table]] = {}
    readers: dict[str, object] = {}
    for findings in results:
        job_pending = pending.setdefault(findings.job, {})
        if findings.job not in readers:
            readers[findings.job] = _lake_reader(settings, findings.job, job_pending)
        job_pending.update(merged_partitions(findings, readers[findings.job]))
    for job, tables in pending.items():
        written += write_findings_many(settings, job, tables)
    return written


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
