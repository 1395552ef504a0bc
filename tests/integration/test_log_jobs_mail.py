"""mail_failures on hand-built ECS mail documents (the samples hold only rejects): per-domain and
per-sender outcomes, DSN classes, queue-delay percentiles and the spike against the trailing
baseline, all computed by Elasticsearch and checked against the documents' own numbers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import statistics

import pytest

from etl.logs.jobs import run_job
from etl.window import UTC, Window

pytestmark = pytest.mark.integration

PREFIX = "monetltest-logjobs-mail"
HOUR = dt.timedelta(hours=1)
SPIKE_HOUR = Window(dt.datetime(2026, 11, 24, 10, tzinfo=UTC), dt.datetime(2026, 11, 24, 11, tzinfo=UTC))


def mail_doc(when, status, domain, sender, dsn, delay, reason=""):
    return {"@timestamp": when.isoformat().replace("+00:00", "Z"), "event.dataset": "postfix",
            "event.action": "delivery", "event.outcome": "success" if status == "sent" else "failure",
            "email.delivery.status": status, "email.to.domain": domain, "email.to.address": f"u@{domain}",
            "email.from.address": sender, "email.dsn": dsn, "email.delay_s": delay, "email.reason": reason,
            "host.name": "mx1", "message": f"synthetic test document {status}"}


@pytest.fixture(scope="module")
def mail_settings(settings, elasticsearch_service, tmp_path_factory):
    from elasticsearch.helpers import bulk

    from etl.logs.documents import logs_index, nest
    from etl.logs.template import ensure_template
    from etl.search.client import es_client

    s = dataclasses.replace(settings, es_index_prefix=PREFIX, lake_url=f"file://{tmp_path_factory.mktemp('lake')}")
    es = es_client(s)
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True)
    ensure_template(es, PREFIX)
    rng = random.Random(5)
    docs = []
    # 24 quiet hours: 1-3 failures each; then the spike hour with 40 bounces for one domain.
    for h in range(24, 0, -1):
        start = SPIKE_HOUR.start - h * HOUR
        for i in range(rng.randint(1, 3)):
            docs.append(mail_doc(start + dt.timedelta(minutes=5 * i + 1), "deferred", "slow.example", "app@broker.cn",
                                 "4.4.1", 300.0, "connect to mx.slow.example: Connection timed out"))
        for i in range(5):
            docs.append(mail_doc(start + dt.timedelta(minutes=7 * i + 2), "sent", "ok.example", "app@broker.cn",
                                 "2.0.0", 0.5 + i, "250 OK"))
    spike = []
    for i in range(40):
        spike.append(mail_doc(SPIKE_HOUR.start + dt.timedelta(seconds=60 * i + 3), "bounced", "gone.example",
                              "report@broker.cn", "5.1.1", 1.0 + i / 10, "User unknown"))
    for i in range(10):
        spike.append(mail_doc(SPIKE_HOUR.start + dt.timedelta(seconds=300 * i + 7), "sent", "ok.example",
                              "app@broker.cn", "2.0.0", 2.0 * i, "250 OK"))
    spike.append(mail_doc(SPIKE_HOUR.start + dt.timedelta(minutes=30), "expired", "slow.example", "app@broker.cn",
                          "4.4.7", 432000.0, "message expired"))
    docs += spike
    actions = [{"_index": logs_index(PREFIX, "postfix", d["@timestamp"]), "_id": f"mailtest-{i}",
                "_source": nest(d)} for i, d in enumerate(docs)]
    bulk(es, actions, refresh="wait_for")
    return s, spike


def test_spike_domains_senders_and_percentiles(mail_settings):
    s, spike = mail_settings
    result = run_job(s, "mail_failures", SPIKE_HOUR)
    counts = result.stats["counts"]
    assert counts == {"sent": 10, "deferred": 0, "bounced": 40, "expired": 1, "rejected": 0}
    assert result.stats["dsn"] == {"2.x.x": 10, "4.x.x": 1, "5.x.x": 40}
    delays = sorted(d["email.delay_s"] for d in spike)
    # TDigest is exact enough at 51 values to land within one neighbour of the true median.
    assert abs(result.stats["delay_s"]["p50"] - statistics.median(delays)) <= 0.2
    assert result.stats["top_reasons"][0] == ("User unknown", 40)
    found = {(f.rule, f.source): f for f in result.findings}
    spike_finding = found[("failure_spike", "mail")]
    assert spike_finding.count == 41 and spike_finding.severity == "high"
    assert max(spike_finding.details["previous_windows"]) <= 3 and len(spike_finding.details["previous_windows"]) == 24
    domain = found[("domain_failures", "gone.example")]
    assert domain.counts["bounced"] == 40 and domain.counts["total"] == 40
    assert ("sender_failures", "report@broker.cn") in found
    assert ("domain_failures", "ok.example") not in found
    text = "\n".join(result.summary)
    assert "gone.example" in text and "      40  bounced" in text


def test_a_quiet_hour_has_no_spike(mail_settings):
    s, _ = mail_settings
    result = run_job(s, "mail_failures", Window(SPIKE_HOUR.start - HOUR, SPIKE_HOUR.start))
    assert not [f for f in result.findings if f.rule == "failure_spike"]
    assert result.stats["counts"]["sent"] == 5
