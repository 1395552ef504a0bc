"""The three log-analysis jobs over Elasticsearch: illegal_access, mail_failures, trade_perf.

`run_job(settings, job, window)` aggregates the window inside Elasticsearch, upserts the findings
into `{prefix}-findings` (by fingerprint) and writes the window's rows to the lake; notification
is a separate step (`etl.notify.notify_findings`) so a failed send never re-runs the analysis."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from etl.config import Settings
from etl.errors import ConfigError
from etl.health.push import reports
from etl.logs.jobs.common import Findings, load_rules, logs_index, search
from etl.window import Window

JOBS = ("illegal_access", "mail_failures", "trade_perf")


def analyse(es, settings: Settings, job: str, window: Window, rules: dict | None = None) -> Findings:
    """The aggregation part only: no writes."""
    rules = rules or load_rules()
    prefix = settings.es_index_prefix
    if job == "mail_failures" and getattr(settings, "mail_local_domains", ""):
        domains = [d for d in settings.mail_local_domains.split(",") if d.strip()]
        rules = rules | {"mail_failures": rules["mail_failures"] | {"local_domains": domains}}
    if job == "illegal_access":
        from etl.logs.jobs import illegal_access

        return Findings(job, window, illegal_access.run(es, prefix, window, rules))
    if job == "mail_failures":
        from etl.logs.jobs import mail_failures

        found, summary, stats = mail_failures.run(es, prefix, window, rules)
        return Findings(job, window, found, summary=summary, stats=stats)
    if job == "trade_perf":
        from etl.logs.jobs import trade_perf

        found, metrics, summary, stats = trade_perf.run(es, prefix, window, rules)
        return Findings(job, window, found, metrics=metrics, summary=summary, stats=stats)
    raise ConfigError(f"unknown log job {job!r}; known: {', '.join(JOBS)}")


def settle(window: Window, settle_s: int, now: dt.datetime | None = None, sleep=time.sleep) -> float:
    """Wait until settle_s seconds after the window's end, so events indexed late (shipper
    batching, the index refresh) are in; a past window waits nothing. Returns seconds waited."""
    now = now or dt.datetime.now(dt.timezone.utc)
    # Epoch seconds: Airflow hands pendulum datetimes, whose subtraction from stdlib ones fails.
    wait = window.end.timestamp() + max(0, settle_s) - now.timestamp()
    wait = min(max(0.0, wait), float(max(0, settle_s)))
    if wait > 0:
        sleep(wait)
    return wait


@reports("log_job")
def run_job(settings: Settings, job: str, window: Window, es=None) -> Findings:
    """Analyse one window, then store: findings index (idempotent upsert) and lake part. A window
    that has just ended is analysed MONETL_LOG_SETTLE_S (default 120) after its end."""
    from etl.logs import findings as store
    from etl.search.client import es_client

    settle(window, getattr(settings, "log_settle_s", 0))
    es = es or es_client(settings)
    result = analyse(es, settings, job, window)
    stored = store.index_findings(es, settings.es_index_prefix, result.findings)
    paths = store.write_lake(settings, result)
    result.summary.append(f"{stored} findings upserted into {settings.es_index_prefix}-findings; "
                          f"{sum(1 for _ in paths)} lake part(s) {', '.join(paths) if paths else '(no rows)'}")
    return result


def bench_all(settings: Settings, window: Window) -> dict[str, float]:
    """Seconds each job's aggregations take over the window (analysis only, nothing written)."""
    from etl.search.client import es_client

    es = es_client(settings)
    rules = load_rules()
    timings = {}
    for job in JOBS:
        started = time.perf_counter()
        analyse(es, settings, job, window, rules)
        timings[job] = time.perf_counter() - started
    return timings


def job_datasets(job: str, rules: dict | None = None) -> list[str]:
    rules = rules or load_rules()
    if job == "illegal_access":
        from etl.logs.jobs.illegal_access import auth_datasets

        cfg = rules[job]
        return sorted(set(auth_datasets(cfg)) | set(cfg["web_datasets"]))
    if job == "mail_failures":
        return list(rules[job]["datasets"])
    cfg = rules["trade_perf"]
    return [cfg["trade_dataset"], *cfg["web"]["datasets"]]


def days_with_data(es, prefix: str, datasets: list[str]) -> list[dt.date]:
    """UTC days on which any of the datasets has documents (one date_histogram)."""
    query = {"terms": {"event.dataset": datasets}}
    aggs = {"days": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1d", "min_doc_count": 1}}}
    result = search(es, logs_index(prefix, datasets), query, aggs)
    buckets = result.get("aggregations", {}).get("days", {}).get("buckets", [])
    return [dt.datetime.fromtimestamp(b["key"] / 1000, tz=dt.timezone.utc).date() for b in buckets]


def run_demo(settings: Settings) -> list[str]:
    """Run the three jobs over the loaded logs: each report day (yesterday, today UTC) as its own
    day window, as the DAGs' windows fall; the years-old real samples in one window per job (one
    window per old day would spend minutes on days nobody reports on). Findings go to the index
    per window and to the lake in one publish step per job."""
    from etl.console import Steps
    from etl.health import push
    from etl.logs import findings as store
    from etl.logs.load import demo_report_days
    from etl.search.client import es_client

    es = es_client(settings)
    first_report_day = demo_report_days()[0]
    lines = []
    for job in JOBS:
        days = days_with_data(es, settings.es_index_prefix, job_datasets(job))
        if not days:
            lines.append(f"{job}: no loaded log data for its datasets")
            continue
        old = [d for d in days if d < first_report_day]
        windows = ([Window(Window.day(old[0]).start, Window.day(old[-1]).end)] if old else []) + \
            [Window.day(d) for d in days if d >= first_report_day]
        by_rule: Counter = Counter()
        sources: Counter = Counter()
        current: Counter = Counter()
        metric_rows = requests = breaches = 0
        results = []
        progress = Steps(job, len(windows))
        for window in windows:
            progress.step(str(window))
            result = analyse(es, settings, job, window)
            store.index_findings(es, settings.es_index_prefix, result.findings)
            results.append(result)
            metric_rows += len(result.metrics)
            for part in result.stats.values() if job == "trade_perf" else []:
                requests += part["requests"]
                breaches += part["sla_breaches"]
            for f in result.findings:
                by_rule[(f.rule, f.severity)] += 1
                sources[f.source] += 1
                if window.start.date() >= first_report_day:
                    current[f.severity] += 1
        paths = store.write_lake_many(settings, results)
        progress.close()
        # analyse() + one lake publish per job instead of run_job() per window: report the job's
        # figures as run_job's decorator would, for its newest window.
        push.push(settings, push.log_job_figures({"job": job}, results[-1], None))
        rules_text = ", ".join(f"{rule}/{sev} {n}" for (rule, sev), n in sorted(by_rule.items())) or "none"
        top = ", ".join(f"{src} ({n})" for src, n in sources.most_common(3)) or "-"
        extra = ""
        if job == "trade_perf":
            extra = f"; {requests:,} requests, {breaches:,} over SLA, {metric_rows:,} metric rows"
        span = f"{len(old)} old sample day(s) {old[0]}..{old[-1]} in one window, " if old else ""
        lines.append(f"{job}: {span}{len(windows) - bool(old)} report day(s); {sum(by_rule.values())} findings "
                     f"[{rules_text}]; top sources {top}{extra}; {len(paths)} lake partition(s)")
        if current:
            lines.append(f"  report days: {sum(current.values())} findings ("
                         + ", ".join(f"{sev} {n}" for sev, n in sorted(current.items())) + ")")
    lines.append(f"findings in Elasticsearch index {settings.es_index_prefix}-findings and lake "
                 f"{settings.lake_url}/findings/job=<job>/date=<day>/")
    return lines
