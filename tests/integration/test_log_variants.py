"""The issue-13 variants end to end on the real Elasticsearch, with real-format lines written
for the test (so the oracle is the test's own line list): RHEL PAM failures, host-name rhost,
ftpd floods, klogind failures, "message repeated", distributed guessing, a burst split by a
window edge, re-runs over other windows converging; the CLI's stdin/.gz input and exit codes;
mail with local domains, DSN codes, normalised reasons, null sender, queue storage and no spike
on a first run; trade_perf over a pattern-file API log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import os
import subprocess
import sys

import pytest

from etl.logs.jobs import run_job
from etl.logs.load import load_files
from etl.search.client import es_client
from etl.window import UTC, Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-logvariants"
DAY1 = dt.datetime(2005, 6, 14, tzinfo=UTC)
MIDNIGHT = DAY1 + dt.timedelta(days=1)


def stamp(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:>2} {t:%H:%M:%S}"


def pam(t, rhost, user="root", pid=4242):
    return (f"{stamp(t)} combo sshd(pam_unix)[{pid}]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
            f"ruser= rhost={rhost}  user={user}")


def auth_lines() -> list[str]:
    lines = []
    # a burst split by midnight: 3 before, 3 after, all within 10 minutes
    for i in range(3):
        lines.append(pam(MIDNIGHT - dt.timedelta(minutes=3 - i), "203.0.113.50"))
    for i in range(3):
        lines.append(pam(MIDNIGHT + dt.timedelta(minutes=i, seconds=5), "203.0.113.50"))
    base = DAY1 + dt.timedelta(hours=10)
    lines += [pam(base + dt.timedelta(seconds=20 * i), "dialup-7.example.net") for i in range(6)]
    lines += [f"{stamp(base + dt.timedelta(hours=1, seconds=10 * i))} combo ftpd[{23700 + i}]: connection from "
              f"198.51.100.77 () at Tue Jun 14 11:00:{i:02d} 2005" for i in range(25)]
    lines += [f"{stamp(base + dt.timedelta(hours=2, seconds=30 * i))} combo klogind[{3200 + i}]: Authentication "
              f"failed from 192.0.2.66 (192.0.2.66): Permission denied in replay cache code" for i in range(6)]
    t = base + dt.timedelta(hours=3)
    lines.append(f"{stamp(t)} combo sshd[24315]: Failed password for root from 192.0.2.88 port 4711 ssh2")
    lines.append(f"{stamp(t + dt.timedelta(seconds=9))} combo sshd[24315]: message repeated 5 times: [ Failed "
                 f"password for root from 192.0.2.88 port 4711 ssh2]")
    for i in range(12):  # slow distributed guessing of one account: 2 tries from each of 12 sources
        for k in range(2):
            lines.append(f"{stamp(base + dt.timedelta(hours=4, minutes=2 * i, seconds=k))} combo sshd[{25000 + i}]: "
                         f"Failed password for oracle from 198.18.0.{10 + i} port {40000 + k} ssh2")
    return lines


@pytest.fixture(scope="module")
def env(settings, elasticsearch_service, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("variants")
    s = dataclasses.replace(settings, es_index_prefix=PREFIX, lake_url=f"file://{tmp / 'lake'}",
                            quarantine_dir=str(tmp / "quarantine"), log_settle_s=0)
    es = es_client(s)
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all")
    yield s, es, tmp
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all")


@pytest.fixture(scope="module")
def auth(env):
    s, es, tmp = env
    path = tmp / "messages.1.gz"
    path.write_bytes(gzip.compress(("\n".join(auth_lines()) + "\n").encode()))
    report = load_files(s, "auto", [path], year=2005, tz="UTC")
    return report


def _rule(result, rule):
    return {f.source if f.source != "(distributed)" else f.target: f for f in result.findings if f.rule == rule}


def test_rhel_style_log_yields_its_findings(env, auth):
    s, es, _ = env
    f = auth.files[0]
    assert f.fmt == "sshd" and f.quarantined_total == 0 and f.loaded == len(auth_lines()) + 4
    day = run_job(s, "illegal_access", Window(DAY1, MIDNIGHT))
    brute = _rule(day, "brute_force")
    assert brute["dialup-7.example.net"].count == 6  # host-name rhost grouped like an address
    assert brute["192.0.2.66"].count == 6  # klogind failures
    assert brute["192.0.2.88"].count == 6  # "message repeated 5 times" is five attempts
    assert "203.0.113.50" not in brute  # only 3 of its failures are in this day
    flood = _rule(day, "ftp_connection_flood")["198.51.100.77"]
    assert flood.count == 25
    guess = _rule(day, "distributed_guessing")["user.name=oracle"]
    assert guess.counts["sources_with_few_tries"] == 12 and guess.count == 24


def test_a_burst_split_by_the_window_edge_is_found_once_whatever_the_windows(env, auth):
    s, es, _ = env
    before = Window(MIDNIGHT - dt.timedelta(minutes=15), MIDNIGHT)
    after = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(minutes=15))
    assert "203.0.113.50" not in _rule(run_job(s, "illegal_access", before), "brute_force")
    found = _rule(run_job(s, "illegal_access", after), "brute_force")["203.0.113.50"]
    assert found.count == 6 and found.first_seen == MIDNIGHT - dt.timedelta(minutes=3)
    assert found.day == DAY1.date()  # dated by its first event, not by the window
    # the same events again through other windows: one stored finding, the same count
    for w in (Window(MIDNIGHT, MIDNIGHT + dt.timedelta(days=1)), Window(DAY1 + dt.timedelta(hours=12),
                                                                        MIDNIGHT + dt.timedelta(hours=12))):
        again = _rule(run_job(s, "illegal_access", w), "brute_force")["203.0.113.50"]
        assert again.fingerprint == found.fingerprint
    es.indices.refresh(index=f"{PREFIX}-findings")
    stored = es.search(index=f"{PREFIX}-findings", query={"bool": {"filter": [
        {"term": {"rule": "brute_force"}}, {"term": {"source": "203.0.113.50"}}]}})["hits"]
    assert stored["total"]["value"] == 1 and stored["hits"][0]["_source"]["count"] == 6


def _cli(args, stdin=None):
    env = dict(os.environ, MONETL_ES_INDEX_PREFIX=PREFIX)
    return subprocess.run([sys.executable, "-m", "etl", "logs", "load", *args], input=stdin, capture_output=True,
                          env=env)


def test_cli_stdin_gzip_and_exit_codes(env):
    s, es, tmp = env
    lines = [pam(DAY1 + dt.timedelta(hours=20, seconds=i), "198.51.100.200") for i in range(3)]
    ok = _cli(["--format", "auto", "--year", "2005", "-"], stdin=gzip.compress(("\n".join(lines) + "\n").encode()))
    assert ok.returncode == 0, ok.stderr
    assert b"loaded 3" in ok.stdout
    junk = tmp / "image.bin"
    junk.write_bytes(b"\x89PNG\x00\x00\x00\rIHDR\x00\n" * 50)
    bad = _cli(["--format", "sshd", "--year", "2005", str(junk)])
    assert bad.returncode == 1 and b"nothing usable loaded from" in bad.stderr and b"binary" in bad.stderr
    wrong = tmp / "access.log"
    wrong.write_text('192.0.2.1 - - [14/Jun/2005:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"\n' * 3)
    assert _cli(["--format", "sshd", "--year", "2005", str(wrong)]).returncode == 1


MAIL_START = dt.datetime(2005, 7, 1, 9, 0, tzinfo=UTC)


def mail_lines() -> list[str]:
    out, t = [], MAIL_START
    def at(i):
        return stamp(t + dt.timedelta(seconds=17 * i))
    for i in range(6):  # inbound spam refused at RCPT for our own domain
        ip = f"192.0.2.{30 + i}"
        out.append(f"{at(i)} mx1 postfix/smtpd[90{i}]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service "
                   f"unavailable; Client host [{ip}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/"
                   f"{ip}; from=<s{i}@spam{i}.example> to=<ann@broker.example> proto=ESMTP helo=<h{i}>")
    for i in range(6):  # our sender bouncing on a gone domain
        qid = f"A{i:05d}BCDE"
        out.append(f"{at(10 + i)} mx1 postfix/qmgr[812]: {qid}: from=<ops@broker.example>, size=900, nrcpt=1 (queue active)")
        out.append(f"{at(10 + i)} mx1 postfix/smtp[91{i}]: {qid}: to=<u{i}@gone.example>, relay=none, delay=1.5, "
                   f"delays=0.1/0/1.4/0, dsn=5.1.1, status=bounced (host mx.gone.example[203.0.113.5] said: 550 5.1.1 "
                   f"<u{i}@gone.example>... User unknown (in reply to RCPT TO command))")
    for i in range(5):  # bounces with the null sender
        qid = f"B{i:05d}BCDE"
        out.append(f"{at(20 + i)} mx1 postfix/qmgr[812]: {qid}: from=<>, size=2306, nrcpt=1 (queue active)")
        out.append(f"{at(20 + i)} mx1 postfix/smtp[92{i}]: {qid}: to=<x{i}@far.example>, relay=mx.far.example"
                   f"[198.51.100.9]:25, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to "
                   f"mx.far.example[198.51.100.9]:25: Connection timed out)")
    for i in range(2):
        out.append(f"{at(30 + i)} mx1 postfix/smtpd[93{i}]: NOQUEUE: reject: MAIL from unknown[192.0.2.{80 + i}]: 452 "
                   f"4.3.1 Insufficient system storage; proto=ESMTP helo=<q{i}>")
    return out


def test_mail_local_domains_codes_reasons_null_sender_and_storage(env):
    s, es, tmp = env
    path = tmp / "mail.log"
    path.write_text("\n".join(mail_lines()) + "\n")
    load_files(s, "postfix", [path], year=2005)
    local = dataclasses.replace(s, mail_local_domains="broker.example")
    result = run_job(local, "mail_failures", Window(MAIL_START, MAIL_START + dt.timedelta(hours=1)))
    found = {(f.rule, f.source): f for f in result.findings}
    assert ("domain_failures", "broker.example") not in found  # inbound spam is not our domain failing
    assert found[("domain_failures", "gone.example")].count == 6
    assert set(k for k in found if k[0] == "sender_failures") == {("sender_failures", "ops@broker.example")}
    assert found[("queue_storage", "mx1")].count == 2 and found[("queue_storage", "mx1")].severity == "high"
    assert not [f for f in result.findings if f.rule == "failure_spike"]  # all-zero baseline: a first run
    codes = {c["code"]: c for c in result.stats["dsn_codes"]}
    assert codes["5.1.1"]["count"] == 6 and "user unknown" in codes["5.1.1"]["meaning"]
    assert codes["4.4.1"]["count"] == 5 and "timed out" in codes["4.4.1"]["meaning"]
    reasons = dict(result.stats["top_reasons"])
    spam = [r for r in reasons if "blocked using zen.spamhaus.org" in r]
    assert len(spam) == 1 and reasons[spam[0]] == 6
    assert result.stats["null_sender"]["deferred"] == 5
    assert result.stats["direction"]["inbound"]["rejected"] == 6
    # without local_domains the old view: the firm's domain shows up as failing
    plain = run_job(s, "mail_failures", Window(MAIL_START, MAIL_START + dt.timedelta(hours=1)))
    assert ("domain_failures", "broker.example") in {(f.rule, f.source) for f in plain.findings}


def test_trade_perf_reads_a_pattern_file_api_log(env):
    s, es, tmp = env
    t0 = dt.datetime(2005, 8, 1, 1, 0, tzinfo=UTC)
    lines = []
    for i in range(30):
        took = 2.5 if i % 3 == 0 else 0.12
        status = 500 if i == 1 else 200
        lines.append(f"{t0 + dt.timedelta(seconds=7 * i):%Y-%m-%d %H:%M:%S}.{i:03d} 25746 INFO "
                     f"nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a69216241{i:03d} u p - - -] "
                     f"10.11.10.{i % 5} \"GET /v2/servers/detail HTTP/1.1\" status: {status} len: 1893 time: {took}")
        lines.append(f"{t0 + dt.timedelta(seconds=7 * i):%Y-%m-%d %H:%M:%S}.500 25746 INFO nova.compute.manager [-] x")
    path = tmp / "nova-api.log"
    path.write_text("\n".join(lines) + "\n")
    report = load_files(s, "auto", [path], host="api1")
    f = report.files[0]
    assert f.fmt == "openstack_api" and f.loaded == 30 and f.skipped == 30 and f.quarantined_total == 0
    result = run_job(s, "trade_perf", Window(t0, t0 + dt.timedelta(hours=1)))
    breach = [x for x in result.findings if x.rule == "sla_breach_rate" and x.source == "api.access"]
    assert breach and breach[0].target == "/v2/servers/detail" and breach[0].count == 10
    rows = [m for m in result.metrics if m["source"] == "api.access"]
    assert sum(m["volume"] for m in rows) == 30 and sum(m["success"] for m in rows) == 29
