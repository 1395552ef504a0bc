"""Notifications of high/critical log findings: SMTP, a generic JSON webhook, a WeChat Work group
robot. Each channel gets each finding (fingerprint) once: the sent-log records per channel what
went out, and a channel that fails is retried on the next run without re-sending the others."""

from __future__ import annotations

import logging

from etl.config import Settings
from etl.errors import ConfigError
from etl.logs.jobs.common import SEVERITIES
from etl.notify.base import Notifier, NotifyError

log = logging.getLogger(__name__)


def notifiers_from_settings(settings: Settings) -> list[Notifier]:
    from etl.notify.smtp import SmtpNotifier
    from etl.notify.webhook import WebhookNotifier, WeComRobotNotifier

    configured: dict[str, Notifier] = {}
    if settings.notify_smtp_to:
        configured["smtp"] = SmtpNotifier(settings)
    if settings.notify_webhook_url:
        configured["webhook"] = WebhookNotifier(settings.notify_webhook_url)
    if settings.notify_wecom_url:
        configured["wecom"] = WeComRobotNotifier(settings.notify_wecom_url)
    wanted = [c.strip() for c in settings.notify_channels.split(",") if c.strip()]
    for name in wanted:
        if name not in ("smtp", "webhook", "wecom"):
            raise ConfigError(f"MONETL_NOTIFY_CHANNELS: unknown channel {name!r} (smtp, webhook, wecom)")
        if name not in configured:
            raise ConfigError(f"MONETL_NOTIFY_CHANNELS names {name!r} but it is not configured")
    return [n for name, n in configured.items() if not wanted or name in wanted]


def worth_notifying(findings: list[dict], min_severity: str) -> list[dict]:
    if min_severity not in SEVERITIES:
        raise ConfigError(f"notify severity {min_severity!r} is not one of {', '.join(SEVERITIES)}")
    floor = SEVERITIES.index(min_severity)
    return [f for f in findings if SEVERITIES.index(f["severity"]) >= floor]


def send_new(findings: list[dict], notifiers: list[Notifier], sent_log, min_severity: str = "high") -> dict[str, int]:
    """Send each channel the findings it has not had yet; returns how many went out per channel.
    A failing channel is reported after the others have been tried."""
    candidates = worth_notifying(findings, min_severity)
    sent: dict[str, int] = {}
    errors = []
    for notifier in notifiers:
        fresh = sent_log.unsent(notifier.name, candidates)
        if not fresh:
            sent[notifier.name] = 0
            continue
        try:
            notifier.send(fresh)
        except NotifyError as exc:
            errors.append(f"{notifier.name}: {exc}")
            continue
        sent_log.mark(notifier.name, [f["fingerprint"] for f in fresh])
        sent[notifier.name] = len(fresh)
        log.info("notified %d finding(s) on %s", len(fresh), notifier.name)
    if errors:
        raise NotifyError("; ".join(errors) + f" (sent: {sent})")
    return sent


def notify_findings(settings: Settings, result, es=None, notifiers: list[Notifier] | None = None) -> dict[str, int]:
    """Notify the run's high/critical findings (a `Findings` from etl.logs.jobs.run_job), with the
    findings index as the sent-log."""
    from etl.logs.jobs.common import findings_index
    from etl.notify.dedup import EsSentLog
    from etl.search.client import es_client

    notifiers = notifiers if notifiers is not None else notifiers_from_settings(settings)
    if not notifiers:
        return {}
    es = es or es_client(settings)
    docs = [f.to_doc() for f in result.findings]
    return send_new(docs, notifiers, EsSentLog(es, findings_index(settings.es_index_prefix)),
                    settings.notify_min_severity)


def notify_stored(settings: Settings, fingerprints: list[str], es=None,
                  notifiers: list[Notifier] | None = None, job: str | None = None) -> dict[str, int]:
    """Notify findings by fingerprint as stored in the findings index (the DAG path: the analysis
    task hands over fingerprints through XCom, never the findings themselves). With `job`, also the
    job's earlier findings some channel never got (a notify that failed through all its retries)."""
    from etl.logs.jobs.common import findings_index
    from etl.notify.dedup import EsSentLog
    from etl.search.client import es_client

    notifiers = notifiers if notifiers is not None else notifiers_from_settings(settings)
    if not notifiers:
        return {}
    es = es or es_client(settings)
    index = findings_index(settings.es_index_prefix)
    wanted = set(fingerprints)
    if job:
        backlog = unsent_earlier(es, index, job, [n.name for n in notifiers], settings.notify_min_severity,
                                 settings.notify_backlog_days)
        if backlog - wanted:
            log.info("%s: %d earlier finding(s) not yet notified on every channel; sending them too", job,
                     len(backlog - wanted))
        wanted |= backlog
    if not wanted:
        return {n.name: 0 for n in notifiers}
    docs = [d["_source"] for d in es.mget(index=index, ids=sorted(wanted))["docs"] if d.get("found")]
    return send_new(docs, notifiers, EsSentLog(es, index), settings.notify_min_severity)


def unsent_earlier(es, index: str, job: str, channels: list[str], min_severity: str, days: int,
                   limit: int = 1000) -> set[str]:
    """Fingerprints of `job`'s findings of the last `days` UTC days at or above `min_severity` that
    at least one of `channels` has not been sent."""
    import datetime as dt

    if min_severity not in SEVERITIES:
        raise ConfigError(f"notify severity {min_severity!r} is not one of {', '.join(SEVERITIES)}")
    severities = SEVERITIES[SEVERITIES.index(min_severity):]
    since = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)).isoformat()
    query = {"bool": {
        "filter": [{"term": {"job": job}}, {"terms": {"severity": list(severities)}},
                   {"range": {"day": {"gte": since}}}],
        "should": [{"bool": {"must_not": {"term": {"notified_channels": c}}}} for c in channels],
        "minimum_should_match": 1}}
    response = es.search(index=index, query=query, size=limit, source=False, ignore_unavailable=True,
                         allow_no_indices=True)
    return {hit["_id"] for hit in response["hits"]["hits"]}
