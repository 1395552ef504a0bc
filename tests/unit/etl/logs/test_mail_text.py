"""Mail details on real-format lines written for the tests: the null sender as its own class,
normalised reasons, DSN codes with meaning, the queue-storage reject, and the spike floor."""

from __future__ import annotations

import math

from etl.logs.jobs.mail_failures import spike_threshold
from etl.logs.mailtext import dsn_meaning, normalise_reason
from etl.logs.parsers import ParseContext, make_parser

LINES = [
    "Nov 25 10:00:01 mx1 postfix/qmgr[812]: 4F1A22C0E1: from=<>, size=2306, nrcpt=1 (queue active)",
    "Nov 25 10:00:02 mx1 postfix/smtp[901]: 4F1A22C0E1: to=<bob@gone.example>, relay=none, delay=0.2, "
    "delays=0.1/0/0.1/0, dsn=5.1.1, status=bounced (host mx.gone.example[203.0.113.5] said: 550 5.1.1 "
    "<bob@gone.example>... User unknown (in reply to RCPT TO command))",
    "Nov 25 10:00:03 mx1 postfix/smtpd[902]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 Service "
    "unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.9;"
    " from=<spam@bad.example> to=<ann@broker.example> proto=ESMTP helo=<x>",
    "Nov 25 10:00:04 mx1 postfix/smtpd[903]: NOQUEUE: reject: RCPT from unknown[198.51.100.2]: 554 5.7.1 Service "
    "unavailable; Client host [198.51.100.2] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/"
    "198.51.100.2; from=<x@bad2.example> to=<ann@broker.example> proto=ESMTP helo=<y>",
    "Nov 25 10:00:05 mx1 postfix/smtpd[904]: NOQUEUE: reject: MAIL from unknown[192.0.2.20]: 452 4.3.1 "
    "Insufficient system storage; proto=ESMTP helo=<z>",
    "Nov 25 10:00:06 mx1 postfix/smtpd[905]: warning: not enough free space in mail queue: 50000 bytes < 1.5*message "
    "size limit",
]


def test_postfix_null_sender_reasons_dsn_and_storage():
    p = make_parser("postfix", ParseContext.build("mail.log", 2026))
    docs = [p.parse(line) for line in LINES]
    assert docs[0]["email.from.address"] == "<>"
    assert docs[1]["email.from.address"] == "<>"  # joined by queue id: a bounce, not "no sender"
    assert docs[1]["email.dsn_meaning"] == "permanent failure: bad destination mailbox address (user unknown)"
    assert docs[2]["email.reason_normalized"] == docs[3]["email.reason_normalized"]
    assert "192.0.2.9" not in docs[2]["email.reason_normalized"]
    assert "blocked using zen.spamhaus.org" in docs[2]["email.reason_normalized"]
    assert docs[2]["email.from.domain"] == "bad.example" and docs[2]["email.to.domain"] == "broker.example"
    assert (docs[4]["email.dsn"], docs[4]["email.delivery.status"]) == ("4.3.1", "rejected")
    assert docs[4]["email.dsn_meaning"] == "transient failure: mail system full (insufficient system storage)"
    assert docs[5]["event.action"] == "queue_storage_low"


def test_dsn_meanings_and_reason_placeholders():
    assert dsn_meaning("4.4.1") == "transient failure: no answer from host (connection timed out)"
    assert dsn_meaning("5.9.99") == "permanent failure" and dsn_meaning("x") is None
    assert normalise_reason("<smtp@example.com>: Relay access denied") == "<address>: Relay access denied"


def test_spike_needs_a_baseline():
    assert math.isinf(spike_threshold([0] * 24, 3.0, min_baseline_mean=1.0))  # first run: no spike
    assert spike_threshold([2] * 24, 3.0, min_baseline_mean=1.0) == 2.0
