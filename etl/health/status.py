"""`monetl status`: one screen of checks, each OK / WARN / FAIL with what to run next, measured
from the stores (Elasticsearch, the sources, the lake, the quarantine and extracts folders) plus the
figures the runs recorded (etl.health.push state). `figures(checks)` is what `monetl health push`
sends to Zabbix, so the screen and Zabbix show the same numbers."""

from __future__ import annotations

import datetime as dt
import inspect
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from etl.health.push import read_state, utc

SOURCES = ("zabbix", "kcmm")
LOG_JOBS = ("illegal_access", "mail_failures", "trade_perf")
OK, WARN, FAIL = "OK", "WARN", "FAIL"
ORDER = {OK: 0, WARN: 1, FAIL: 2}

# Thresholds, seconds. Ingestion runs every 5 min on the previous 5 min, so the newest point is
# normally 5-10 min old; the Zabbix trigger fires at 15 min without a successful run.
LAG_WARN, LAG_FAIL = 15 * 60, 60 * 60
GAP_WARN_AFTER, GAP_FAIL_AFTER = 10 * 60, 60 * 60
EXTRACT_WARN, EXTRACT_FAIL = 26 * 3600, 50 * 3600
LOG_JOB_WARN, LOG_JOB_FAIL = 2 * 3600, 24 * 3600
# A few bad records are the sources' business (replay once fixed); a pile means nobody looks.
QUARANTINE_WARN = 1000


@dataclass
class Check:
    name: str
    state: str
    detail: str
    next: str = ""
    figures: dict = field(default_factory=dict)   # health keys -> values for Zabbix


@dataclass
class Status:
    checks: list[Check]
    at: str

    @property
    def overall(self) -> str:
        return max((c.state for c in self.checks), key=ORDER.get, default=OK)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.state == s) for s in (OK, WARN, FAIL)}

    def to_json(self) -> dict:
        return {"at": self.at, "overall": self.overall, "counts": self.counts(),
                "checks": [asdict(c) for c in self.checks]}

    def figures(self) -> dict:
        out: dict = {}
        for c in self.checks:
            out.update(c.figures)
        counts = self.counts()
        out["monetl.status.fail"], out["monetl.status.warn"] = counts[FAIL], counts[WARN]
        return out

    def lines(self) -> list[str]:
        width = max((len(c.name) for c in self.checks), default=10)
        out = [f"monetl status at {self.at}: {self.overall} "
               f"({', '.join(f'{n} {s}' for s, n in self.counts().items())})"]
        for c in self.checks:
            out.append(f"{c.name:<{width}}  {c.state:<4}  {c.detail}")
            if c.next and c.state != OK:
                out.append(f"{'':<{width}}        next: {c.next}")
        return out


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _grade(age: float, warn: float, fail: float) -> str:
    return OK if age <= warn else WARN if age <= fail else FAIL


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


# --- the checks -------------------------------------------------------------------------------

def newest_point(es, prefix: str, source: str) -> float | None:
    """Epoch seconds of the newest point of a source in Elasticsearch (one max aggregation)."""
    from etl.schema import points_index_pattern

    found = es.search(index=points_index_pattern(prefix, source), size=0, track_total_hits=False,
                      aggs={"newest": {"max": {"field": "clock"}}}, ignore_unavailable=True, allow_no_indices=True)
    value = found.get("aggregations", {}).get("newest", {}).get("value")
    return value / 1000 if value is not None else None


def check_ingest(settings, es, source: str, now: float) -> Check:
    name = f"ingest {source}"
    state = read_state(settings)
    last = state.get(f"monetl.ingest.last_success[{source}]", {}).get("value")
    last_text = f"; last successful run {utc(last)}" if last else ""
    try:
        newest = newest_point(es, settings.es_index_prefix, source)
    except Exception as exc:
        return Check(name, FAIL, f"Elasticsearch not readable: {str(exc)[:200]}",
                     "monetl services status; check MONETL_ES_URL")
    if newest is None:
        return Check(name, WARN, f"no points in Elasticsearch (source not in use?){last_text}",
                     f"monetl ingest {source} --start ... --end ...")
    lag = max(now - newest, 0)
    grade = _grade(lag, LAG_WARN, LAG_FAIL)
    return Check(name, grade, f"newest point {_iso(newest)}, lag {_age(lag)}{last_text}",
                 f"monetl backfill {source} --start {_iso(newest)} --end {_iso(now)} "
                 f"(and check the {source}_metrics DAG)",
                 {f"monetl.ingest.lag[{source}]": int(lag)})


# The gap check's default scope: the hosts that have points of the source in Elasticsearch over the
# last SCOPE_HOURS, i.e. the hosts monetl ingests. A Zabbix also holds hosts nobody ingests (the
# server's own "Zabbix server", other teams' and test hosts): counting them reads as permanent gaps.
SCOPE_HOURS = 24
HOST_PAGE = 5000  # hosts per composite page


def ingested_hosts(es, prefix: str, source: str, since: float) -> list[str]:
    """Hosts with a point of `source` in Elasticsearch since `since` (epoch s), paged (composite)."""
    from etl.schema import points_index_pattern
    from etl.search.composite import composite_buckets

    def search(aggs: dict) -> dict:
        return es.search(index=points_index_pattern(prefix, source), size=0, track_total_hits=False,
                         query={"range": {"clock": {"gte": int(since), "format": "epoch_second"}}},
                         aggs=aggs, ignore_unavailable=True, allow_no_indices=True)

    return [b["key"]["host"] for b in composite_buckets(
        search, [{"host": {"terms": {"field": "host"}}}], size=HOST_PAGE, name="hosts")]


def check_gaps(settings, es, source: str, now: float, hours: int, hosts: list[str] | None = None) -> Check:
    """hosts None: every host at the source (collect() passes its scope)."""
    from etl import ingest
    from etl.health.push import gap_values
    from etl.window import Window

    name = f"gaps {source}"
    end = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    window = Window(end - dt.timedelta(hours=hours), end)
    if hosts is not None and not hosts:
        return Check(name, OK, f"no host of {source} in Elasticsearch in the last {SCOPE_HOURS}h: nothing compared",
                     f"monetl gaps {source} --start ... --end ... (every host at the source)")
    try:
        # Undecorated: measuring must not push (only `status --push` / `health push` send the
        # figures, below, so the screen and Zabbix show the same numbers).
        report = inspect.unwrap(ingest.gaps)(settings, source, window, client=es, hosts=hosts)
    except Exception as exc:
        return Check(name, WARN, f"not counted at the source: {type(exc).__name__}: {str(exc)[:200]}",
                     f"monetl gaps {source} --start {_iso(window.start.timestamp())} --end {_iso(window.end.timestamp())}")
    if not report.buckets:
        return Check(name, OK, f"no points at the source or in Elasticsearch in the last {hours}h")
    ages = [now - b.end.timestamp() for b in report.gaps]
    missing = sum(b.missing for b in report.gaps)
    grade = OK
    if ages:
        grade = FAIL if max(ages) > GAP_FAIL_AFTER else WARN if max(ages) > GAP_WARN_AFTER else OK
    detail = (f"{len(report.gaps)} of {len(report.buckets)} hourly buckets short ({missing} points) in the last {hours}h"
              if report.gaps else f"none in the last {hours}h ({len(report.buckets)} hourly buckets match)")
    if hosts is not None:
        detail += f", {len(hosts)} hosts"
    return Check(name, grade, detail,
                 f"monetl backfill {source} --start {_iso(window.start.timestamp())} --end {_iso(window.end.timestamp())}",
                 gap_values(report.source, report.gaps))


def check_lake(settings, es, source: str) -> Check:
    from etl.lake import reader
    from etl.lake.compact import days_due
    from etl.lake.storage import open_storage
    from etl.schema import points_index

    name = f"lake {source}"
    try:
        days = sorted(reader.published_days(open_storage(settings), source))
        due = days_due(settings, es, source)
    except Exception as exc:
        return Check(name, FAIL, f"lake or Elasticsearch not readable: {str(exc)[:200]}",
                     f"monetl lake ls --source {source}")
    verified = read_state(settings).get(f"monetl.lake.verified[{source}]")
    span = f"{len(days)} days ({days[0]}..{days[-1]})" if days else "no days"
    if verified is None and days and not es.indices.exists(index=points_index(settings.es_index_prefix, source, days[-1])):
        # Compaction deletes a day's index only after the lake copy verified.
        ver, grade = f"{days[-1]} verified (its index was deleted after verification)", OK
    elif verified is None:
        ver, grade = "no verification recorded", OK if not days else WARN
    elif verified["value"]:
        ver, grade = f"last verification passed {utc(verified['clock'])}", OK
    else:
        ver, grade = f"last verification FAILED {utc(verified['clock'])} (index kept)", FAIL
    if due:
        grade = max(grade, WARN, key=ORDER.get)
        ver += f"; {len(due)} day(s) past retention still in Elasticsearch"
    nxt = ("monetl compact --older-than-retention" if due or verified is None
           else f"monetl lake verify --source {source} --day {days[-1] if days else 'YYYY-MM-DD'}")
    return Check(name, grade, f"{span} in the lake; {ver}", nxt)


def quarantine_backlog(settings) -> tuple[int, int]:
    """(records, files) in the quarantine folder. A record is counted once by its key however many
    files hold it: overlapping runs (and replays that left it bad) quarantine the same point again
    under their own run's file, and that is still one point to fix."""
    from etl import quarantine

    folder = Path(settings.quarantine_dir).expanduser()
    paths = sorted(folder.rglob("*.jsonl"))
    keys = set()
    for path in paths:
        for number, entry in enumerate(quarantine.read(path)):
            keys.add(entry.get("key") or (str(path), number))
    return len(keys), len(paths)


def check_quarantine(settings) -> Check:
    records, files = quarantine_backlog(settings)
    grade = OK if records < QUARANTINE_WARN else WARN
    detail = f"{records} distinct records in {files} files under {settings.quarantine_dir}" if records else "empty"
    return Check("quarantine", grade, detail, f"fix the source, then monetl replay {settings.quarantine_dir}",
                 {"monetl.quarantine.backlog": records})


def check_extracts(settings, now: float) -> Check:
    from etl.extracts.build import extracts_dir

    files = list(extracts_dir(settings).glob("*.hyper"))
    if not files:
        return Check("extracts", WARN, f"none built in {extracts_dir(settings)}", "monetl extracts build")
    newest = max(f.stat().st_mtime for f in files)
    age = now - newest
    return Check("extracts", _grade(age, EXTRACT_WARN, EXTRACT_FAIL),
                 f"{len(files)} files, last build {_iso(newest)} ({_age(age)} ago)",
                 "monetl extracts build (and check the lake_compaction and reports DAGs)")


def _last_findings(es, prefix: str, job: str) -> tuple[dict | None, float | None]:
    """When the state file has no run (another machine ran the job): the newest finding it wrote."""
    from etl.logs.jobs.common import findings_index

    try:
        found = es.search(index=findings_index(prefix), size=0, query={"term": {"job": job}},
                          aggs={"ran": {"max": {"field": "updated_at"}}, "end": {"max": {"field": "window.end"}}},
                          ignore_unavailable=True, allow_no_indices=True)
    except Exception:
        return None, None
    aggs = found.get("aggregations", {})
    ran, end = aggs.get("ran", {}).get("value"), aggs.get("end", {}).get("value")
    return ({"value": ran / 1000, "clock": ran / 1000} if ran else None), (end / 1000 if end else None)


def check_log_job(settings, job: str, now: float, es=None) -> Check:
    state = read_state(settings)
    name = f"log job {job}"
    ran = state.get(f"monetl.logs.last_run[{job}]")
    window_end = state.get(f"monetl.logs.window_end[{job}]", {}).get("value")
    nxt = f"monetl logs run {job} --start ... --end ... (and check the log_{job} DAG)"
    if ran is None and es is not None:
        ran, window_end = _last_findings(es, settings.es_index_prefix, job)
    if ran is None:
        return Check(name, WARN, "no run recorded", nxt)
    age = now - ran["value"]
    return Check(name, _grade(age, LOG_JOB_WARN, LOG_JOB_FAIL),
                 f"last run {utc(ran['value'])} ({_age(age)} ago), window up to {utc(window_end)}", nxt)


def collect(settings, es=None, gaps_hours: int = 3, now: float | None = None,
            sources=SOURCES, jobs=LOG_JOBS, hosts: dict[str, list[str]] | None = None,
            all_hosts: bool = False) -> Status:
    """hosts: per source, the hosts the gap check is scoped to (as the ingestion is); a source not
    named there: the hosts monetl ingests (points in Elasticsearch in the last SCOPE_HOURS), or with
    all_hosts every host at the source."""
    from etl.search.client import es_client

    now = now or time.time()
    es = es or es_client(settings)
    checks = []
    for source in sources:
        checks.append(check_ingest(settings, es, source, now))
        scope = (hosts or {}).get(source)
        if scope is None and not all_hosts:
            try:
                scope = ingested_hosts(es, settings.es_index_prefix, source, now - SCOPE_HOURS * 3600)
            except Exception:  # Elasticsearch unreadable: check_ingest already says FAIL; count every host
                scope = None
        checks.append(check_gaps(settings, es, source, now, gaps_hours, scope))
        checks.append(check_lake(settings, es, source))
    checks.append(check_quarantine(settings))
    checks.append(check_extracts(settings, now))
    checks += [check_log_job(settings, job, now, es) for job in jobs]
    return Status(checks, _iso(now))
