"""Notifications of real findings (the Kerberos spray sample through the real loader and
Elasticsearch) to a local SMTP sink (aiosmtpd) and a local HTTP sink speaking the WeChat Work
robot protocol: each finding arrives once across two runs of the same window."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etl.config import Secret
from etl.logs.jobs import run_job
from etl.notify import notify_findings, notifiers_from_settings
from etl.notify.base import NotifyError
from etl.window import Window

pytestmark = pytest.mark.integration

PREFIX = "monetltest-notify"
SPRAY_WINDOW = Window.parse("2020-07-22T00:00Z", "2020-07-23T00:00Z")


@pytest.fixture(scope="module")
def smtp_sink():
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            return "250 OK"

    # aiosmtpd probes the port it was given once started, so it needs a concrete free one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def http_sink():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def notify_settings(settings, elasticsearch_service, samples_dir, tmp_path_factory, smtp_sink, http_sink):
    from etl.logs.load import load_files
    from etl.search.client import es_client

    _, smtp_port = smtp_sink
    _, http_port = http_sink
    s = dataclasses.replace(
        settings, es_index_prefix=PREFIX, lake_url=f"file://{tmp_path_factory.mktemp('lake')}",
        quarantine_dir=str(tmp_path_factory.mktemp("quarantine")),
        smtp_port=smtp_port, notify_smtp_host="127.0.0.1", notify_smtp_to="secops@example.com",
        notify_wecom_url=Secret(f"http://127.0.0.1:{http_port}/cgi-bin/webhook/send?key=robot-key-123"),
        notify_webhook_url=Secret(f"http://127.0.0.1:{http_port}/hooks/monetl"))
    es_client(s).indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True)
    load_files(s, "winsec", [samples_dir / "evtx_attack_samples/kerberos_pwd_spray_4771.jsonl"])
    return s


def test_each_high_finding_is_notified_once_across_two_runs(notify_settings, smtp_sink, http_sink):
    from etl.search.client import es_client

    mails = smtp_sink[0].messages
    posts, _ = http_sink
    first = run_job(notify_settings, "illegal_access", SPRAY_WINDOW)
    high = {f.fingerprint for f in first.findings if f.severity in ("high", "critical")}
    assert len(high) >= 2  # password_spray and success_after_failures from 172.16.66.1
    assert notify_findings(notify_settings, first) == {"smtp": len(high), "webhook": len(high), "wecom": len(high)}
    second = run_job(notify_settings, "illegal_access", SPRAY_WINDOW)
    assert notify_findings(notify_settings, second) == {"smtp": 0, "webhook": 0, "wecom": 0}

    assert len(mails) == 1
    mail_from, rcpt, content = mails[0]
    message = message_from_bytes(content)
    assert rcpt == ["secops@example.com"] and message["Subject"].startswith("[monetl] ")
    body = message.get_payload(decode=True).decode()
    assert all(fp in body for fp in high) and "password_spray" in body

    assert len(posts) == 2
    by_path = {p[0]: p for p in posts}
    generic = by_path["/hooks/monetl"][2]
    assert {f["fingerprint"] for f in generic["findings"]} == high and generic["subject"].startswith("[monetl]")
    path, content_type, payload = by_path["/cgi-bin/webhook/send?key=robot-key-123"]
    assert path == "/cgi-bin/webhook/send?key=robot-key-123" and content_type.startswith("application/json")
    assert payload["msgtype"] == "markdown" and "172.16.66.1" in payload["markdown"]["content"]
    assert len(payload["markdown"]["content"].encode()) <= 4096

    es = es_client(notify_settings)
    for fp in high:
        doc = es.get(index=f"{PREFIX}-findings", id=fp)["_source"]
        assert sorted(doc["notified_channels"]) == ["smtp", "webhook", "wecom"] and doc["notified_at"]


def test_unreachable_channel_fails_loudly_without_leaking_the_url(notify_settings):
    broken = dataclasses.replace(notify_settings, notify_smtp_to="", notify_webhook_url=Secret(""),
                                 notify_wecom_url=Secret("http://127.0.0.1:9/cgi-bin/webhook/send?key=SECRETKEY"),
                                 es_index_prefix=PREFIX)
    result = run_job(broken, "illegal_access", SPRAY_WINDOW)
    # The sent-log is kept per channel name; a channel not used before has everything still to send.
    notifier = notifiers_from_settings(broken)[0]
    notifier.name = "wecom-broken"
    with pytest.raises(NotifyError) as caught:
        notify_findings(broken, result, notifiers=[notifier])
    assert "SECRETKEY" not in str(caught.value) and "unreachable" in str(caught.value)
    # Nothing was marked as sent on the failed channel: the next run tries again.
    from etl.search.client import es_client

    fp = next(f.fingerprint for f in result.findings if f.severity == "high")
    doc = es_client(broken).get(index=f"{PREFIX}-findings", id=fp)["_source"]
    assert "wecom-broken" not in doc.get("notified_channels", [])


def test_findings_whose_notification_failed_for_good_are_sent_by_the_next_run(notify_settings, http_sink):
    # The DAG path: analyse hands fingerprints to notify; a notify that failed through every retry
    # must not lose them, though the next run's own fingerprints are different (here: none).
    from etl.notify import notify_stored
    from etl.notify.webhook import WebhookNotifier

    s = dataclasses.replace(notify_settings, notify_backlog_days=100_000)  # the sample is from 2020
    result = run_job(s, "illegal_access", SPRAY_WINDOW)
    high = sorted(f.fingerprint for f in result.findings if f.severity in ("high", "critical"))
    broken = WebhookNotifier(Secret("http://127.0.0.1:9/hooks/late"))
    broken.name = "webhook-late"
    with pytest.raises(NotifyError):
        notify_stored(s, high, notifiers=[broken], job="illegal_access")
    posts, port = http_sink
    before = len(posts)
    working = WebhookNotifier(Secret(f"http://127.0.0.1:{port}/hooks/late"))
    working.name = "webhook-late"
    assert notify_stored(s, [], notifiers=[working], job="illegal_access") == {"webhook-late": len(high)}
    sent = [p for p in posts[before:] if p[0] == "/hooks/late"]
    assert len(sent) == 1 and sorted(f["fingerprint"] for f in sent[0][2]["findings"]) == high
    assert notify_stored(s, [], notifiers=[working], job="illegal_access") == {"webhook-late": 0}
