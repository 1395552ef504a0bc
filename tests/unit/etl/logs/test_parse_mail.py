"""postfix / sendmail / exim / dovecot parsers: the real fail2ban samples (rejects, auth failures)
and constructed delivery lines (the samples hold no status= lines) for the sender join."""

from __future__ import annotations

import re
from collections import Counter

from etl.logs.parsers import ParseContext, make_parser
from logs_parse_support import assert_accounted, parse_sample, text_lines


def test_postfix_sample(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "postfix.log"
    parsed = parse_sample(settings, tmp_path, path, "postfix", year=2017)
    assert_accounted(parsed, path)
    assert parsed.report.quarantined_total == 0
    lines = text_lines(path)
    rejects = [l for l in lines if "reject: " in l]
    assert parsed.count(email__delivery__status="rejected") == len(rejects)
    # independent: enhanced status code = the token after the 3-digit SMTP code, when it looks like x.y.z
    expected = Counter()
    for l in rejects:
        m = re.search(r": (\d{3}) (\d\.\d+\.\d+) ", l)
        if m:
            expected[m.group(2)] += 1
    got = Counter(d["email"].get("dsn") for d in parsed.docs.values() if d.get("email", {}).get("dsn"))
    assert got == expected
    assert parsed.count(event__action="sasl_auth_failed") == sum("SASL" in l and "authentication failed" in l for l in lines)
    d = parsed.flat(2)
    assert d["@timestamp"] == "2017-07-12T07:47:48.000000Z"
    assert d["event.dataset"] == "postfix" and d["event.action"] == "reject" and d["event.outcome"] == "failure"
    assert (d["email.dsn"], d["email.smtp_code"], d["email.reason"]) == ("5.7.1", 554, "<smtp@example.com>: Relay access denied")
    assert (d["email.from.address"], d["email.to.address"], d["email.to.domain"]) == ("john@example.com", "smtp@example.org", "example.org")
    assert (d["source.ip"], d["source.domain"]) == ("1.2.3.4", "1-2-3-4-example.com")
    assert d["process.name"] == "postfix/smtpd" and d["host.name"] == "saturn"
    d = parsed.flat(8)  # queue id instead of NOQUEUE
    assert d["email.queue_id"] == "00ADB3C0899" and d["email.dsn"] == "5.1.1"
    postscreen = next(i for i, l in enumerate(lines, 1) if "postscreen" in l and "reject:" in l)
    d = parsed.flat(postscreen)
    assert d["source.ip"] == "216.245.194.173" and d["email.to.address"] == "goodguy@example.com"


def test_postfix_delivery_status_and_sender_join():
    p = make_parser("postfix", ParseContext.build("mail.log", 2026, "Asia/Shanghai"))
    lines = [
        "Nov 25 09:00:01 mx1 postfix/qmgr[812]: 4BXkLm1Zz9z9t: from=<ops@broker.example>, size=2048, nrcpt=2 (queue active)",
        "Nov 25 09:00:02 mx1 postfix/smtp[901]: 4BXkLm1Zz9z9t: to=<alice@client.example>, relay=mx.client.example[203.0.113.5]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 123)",
        "Nov 25 09:00:03 mx1 postfix/smtp[901]: 4BXkLm1Zz9z9t: to=<bob@Gone.example>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to gone.example[198.51.100.7]:25: Connection timed out)",
        "Nov 25 09:00:04 mx1 postfix/smtp[902]: 5CYlMn2Aa0a0u: to=<carol@client.example>, orig_to=<c@client.example>, relay=mx.client.example[203.0.113.5]:25, delay=0.8, delays=0.1/0/0.3/0.4, dsn=5.1.1, status=bounced (host mx.client.example[203.0.113.5] said: 550 5.1.1 User unknown (in reply to RCPT TO command))",
        "Nov 25 09:00:05 mx1 postfix/qmgr[812]: 6DZmNo3Bb1b1v: from=<ops@broker.example>, status=expired, returned to sender",
    ]
    docs = [p.parse(l) for l in lines]
    assert docs[0]["event.action"] == "queued"
    sent, deferred, bounced, expired = docs[1:]
    assert sent["@timestamp"] == "2026-11-25T01:00:02.000000Z"
    assert (sent["email.delivery.status"], sent["email.dsn"], sent["email.delay_s"]) == ("sent", "2.0.0", 1.2)
    assert sent["email.relay"] == "mx.client.example[203.0.113.5]:25" and sent["event.outcome"] == "success"
    assert sent["email.from.address"] == "ops@broker.example"  # joined from the qmgr line by queue id
    assert sent["email.to.domain"] == "client.example"
    assert deferred["email.delivery.status"] == "deferred" and deferred["email.to.domain"] == "gone.example"
    assert deferred["email.reason"].startswith("connect to gone.example") and deferred["event.outcome"] == "failure"
    assert bounced["email.delivery.status"] == "bounced" and bounced["email.dsn"] == "5.1.1"
    assert "email.from.address" not in bounced  # its queue id has no sender line
    assert expired["email.delivery.status"] == "expired" and expired["email.from.address"] == "ops@broker.example"


def test_sendmail_samples(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "sendmail-reject.log"
    parsed = parse_sample(settings, tmp_path, path, "sendmail", year=2017)
    assert_accounted(parsed, path)
    lines = text_lines(path)
    expected = sum("reject=" in l or l.endswith("... No such user here") or l.endswith("... User unknown") for l in lines)
    assert parsed.count(email__delivery__status="rejected") == expected
    d = parsed.flat(1)
    assert (d["email.queue_id"], d["email.smtp_code"], d["email.dsn"]) == ("s1P819mk027713", 550, "5.7.1")
    assert d["email.to.address"] == "asservnew@freemailhost.ru" and d["source.ip"] == "128.68.136.133"
    # the 'from=' line of a queue id gives the sender to its later lines only (in-file join)
    n = next(i for i, l in enumerate(lines, 1) if "rA37ZTSC026252: <anton@domain.com>" in l)
    assert parsed.flat(n)["email.to.address"] == "anton@domain.com"
    auth = samples_dir / "fail2ban" / "sendmail-auth.log"
    parsed = parse_sample(settings, tmp_path / "a", auth, "sendmail", year=2017)
    assert_accounted(parsed, auth)
    assert parsed.count(event__action="auth_failed") == sum("AUTH failure" in l for l in text_lines(auth))


def test_sendmail_delivery_line():
    p = make_parser("sendmail", ParseContext.build("maillog", 2026))
    d = p.parse("Nov 25 10:00:00 mx sm-mta[4242]: 5APA0012345678: to=<x@y.example>, delay=00:00:05, xdelay=00:00:05, "
                "mailer=esmtp, pri=120, relay=mx.y.example. [192.0.2.9], dsn=4.0.0, stat=Deferred: Connection refused by mx.y.example.")
    assert (d["email.delivery.status"], d["email.dsn"], d["email.delay_s"]) == ("deferred", "4.0.0", 5.0)
    assert d["email.to.domain"] == "y.example"


def test_exim_samples(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "exim.log"
    parsed = parse_sample(settings, tmp_path, path, "exim", tz="Europe/Berlin")
    assert_accounted(parsed, path)
    lines = text_lines(path)
    assert parsed.count(event__action="auth_failed") == sum("authenticator failed" in l for l in lines)
    assert parsed.count(email__delivery__status="rejected") == sum(
        "rejected RCPT" in l or "sender verify fail" in l for l in lines)
    d = parsed.flat(1)
    assert d["@timestamp"] == "2013-01-04T16:03:46.000000Z"  # local Berlin winter time -> UTC
    assert (d["source.ip"], d["user.name"]) == ("24.106.174.74", "brian")
    spam = samples_dir / "fail2ban" / "exim-spam.log"
    parsed = parse_sample(settings, tmp_path / "s", spam, "exim")
    assert_accounted(parsed, spam)
    assert parsed.report.quarantined_total == 0


def test_exim_delivery_lines():
    p = make_parser("exim", ParseContext.build("mainlog"))
    docs = [p.parse(l) for l in [
        "2026-11-25 10:00:00 1tFxYz-000123-AB <= ops@broker.example H=app1 [10.1.2.3] P=esmtp S=1234",
        "2026-11-25 10:00:01 1tFxYz-000123-AB => alice@client.example R=dnslookup T=remote_smtp H=mx.client.example [203.0.113.5]",
        "2026-11-25 10:00:02 1tFxYz-000123-AB ** bob@gone.example: Unrouteable address",
        "2026-11-25 10:00:03 1tFxYz-000123-AB == carol@slow.example R=dnslookup T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO",
    ]]
    assert docs[1]["email.delivery.status"] == "sent" and docs[1]["email.from.address"] == "ops@broker.example"
    assert docs[2]["email.delivery.status"] == "bounced" and docs[2]["email.reason"] == "Unrouteable address"
    assert docs[3]["email.delivery.status"] == "deferred" and docs[3]["email.to.domain"] == "slow.example"


def test_dovecot_sample(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "dovecot.log"
    parsed = parse_sample(settings, tmp_path, path, "dovecot", year=2017)
    assert_accounted(parsed, path)
    assert parsed.report.quarantined_total == 0
    lines = text_lines(path)
    login_failures = [l for l in lines if re.search(r"-login: .*(\(auth failed|proxy dest auth failed)", l)]
    assert parsed.count(event__action="auth_failed") == len(login_failures)
    d = parsed.flat(1)  # TAI64N stamp, imap login failure
    assert d["@timestamp"] == "2010-09-16T05:50:50.125476Z"
    assert (d["user.name"], d["source.ip"], d["destination.ip"]) == ("martin@waschbuesch.de", "80.187.101.33", "80.254.129.240")
    assert d["event.outcome"] == "failure" and d["dovecot.auth_attempts"] == 1
    n = next(i for i, l in enumerate(lines, 1) if "(given password:" in l)
    d = parsed.flat(n)
    assert d["event.action"] == "password_mismatch" and d["user.name"] == "info@example.com"
    assert "XxxxXXxx123" not in d["message"]  # attempted passwords never reach Elasticsearch
