"""Older and other syslog variants on real-format lines written for the tests: RHEL/Fedora PAM
headers `prog(module)[pid]`, ftpd connection floods and failures, klogind failures, host-name
rhost, `--format auto` on them, and a user-defined pattern-file format (OpenStack API log)."""

from __future__ import annotations

import json

import pytest

from etl.errors import ConfigError
from etl.logs.parsers import ParseContext, make_parser, parser_class, sniff
from etl.logs.parsers.syslog import parse_header

RHEL = [
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
    "ruser= rhost=218.188.2.4 ",
    "Jun 14 15:16:02 combo sshd(pam_unix)[4242]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
    "ruser= rhost=192.0.2.10  user=root",
    "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
    "ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
    "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)",
    "Jul 10 03:55:15 combo ftpd[23777]: connection from 211.107.232.1 () at Sun Jul 10 03:55:15 2005",
    "Jul 10 03:55:16 combo ftpd[23778]: connection from 84.102.20.2 (84-102-20-2.dsl.example.net) at Sun Jul 10 "
    "03:55:16 2005",
    "Jun 19 04:08:57 combo klogind[3209]: Authentication failed from 163.27.187.39 (163.27.187.39): Permission "
    "denied in replay cache code",
    "Jun 20 04:44:39 combo sshd[24315]: message repeated 5 times: [ Failed password for root from 192.0.2.7 "
    "port 4711 ssh2]",
    "Jan  1 10:00:00 combo vsftpd[12]: [bob] FAIL LOGIN: Client \"198.51.100.3\"",
    "Jan  1 10:00:01 combo ftpd[13]: FTP LOGIN FAILED FROM 198.51.100.4, alice",
    "Jun 15 04:06:19 combo kernel: Linux version 2.6.5-1.358 (bhcompile@bugs.build.redhat.com)",
]


@pytest.fixture()
def sshd():
    return make_parser("sshd", ParseContext.build("messages", 2005))


def test_pam_style_header_names_program_module_and_pid():
    h = parse_header(RHEL[1], ParseContext.build("messages", 2005))
    assert (h.host, h.program, h.module, h.pid) == ("combo", "sshd", "pam_unix", 4242)
    assert h.message.startswith("authentication failure;")


def test_pam_failures_ftp_and_klogind_are_classified(sshd):
    docs = [sshd.parse(line) for line in RHEL]
    assert [d["event.action"] for d in docs[:3]] == ["pam_authentication_failure"] * 3
    assert docs[0]["source.ip"] == "218.188.2.4" and "user.name" not in docs[0]
    assert docs[1]["user.name"] == "root" and docs[1]["log.logger"] == "pam_unix"
    # a host name in rhost= is the source's domain, grouped by the jobs like an address
    assert docs[2]["source.domain"] == "220-135-151-1.hinet-ip.hinet.net" and "source.ip" not in docs[2]
    assert docs[3]["event.action"] == "session_opened" and docs[3]["user.name"] == "cyrus"
    assert docs[4]["event.action"] == "ftp_connection" and docs[4]["source.ip"] == "211.107.232.1"
    assert docs[5]["source.domain"] == "84-102-20-2.dsl.example.net"
    assert (docs[6]["event.action"], docs[6]["event.outcome"], docs[6]["source.ip"]) == \
        ("kerberos_auth_failed", "failure", "163.27.187.39")
    assert docs[7]["event.repeated"] == 5 and docs[7]["event.action"] == "failed_password"
    assert (docs[8]["event.action"], docs[8]["user.name"], docs[8]["source.ip"]) == \
        ("ftp_login_failed", "bob", "198.51.100.3")
    assert (docs[9]["user.name"], docs[9]["source.ip"]) == ("alice", "198.51.100.4")
    assert docs[10]["event.action"] == "other"


def test_auto_recognises_rhel_messages_and_keeps_the_others():
    assert sniff(RHEL) == "sshd"
    assert sniff(["Jun 14 15:16:01 combo kernel: eth0: link up"] * 5) == "sshd"  # plain BSD syslog
    assert sniff(["Jun 14 15:16:01 mx postfix/smtpd[1]: connect from x[192.0.2.1]"] * 5) == "postfix"
    assert sniff(["\x00\x01binary"] * 5) is None


API = ('2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae '
       '113d3a99c3da401fbd62cc2caa5b96d2 54fadb412c4e40cdbaed9335e4c35a9e - - -] 10.11.10.1 "GET '
       '/v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail?all=1 HTTP/1.1" status: 200 len: 1893 time: 0.2477829')


def test_pattern_file_format_reads_an_api_log_with_status_and_latency():
    p = make_parser("openstack_api", ParseContext.build("nova-api.log", None, "UTC"))
    d = p.parse(API)
    assert d["@timestamp"] == "2017-05-16T00:00:00.008000Z"
    assert d["http.response.status_code"] == 200 and d["http.response.bytes"] == 1893
    assert d["event.duration"] == 247_782_900  # seconds -> ns, what trade_perf reads
    assert d["url.path"] == "/v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail" and d["url.query"] == "all=1"
    assert d["source.ip"] == "10.11.10.1" and d["event.outcome"] == "success"
    assert p.dataset == "api.access"
    assert p.parse("2017-05-16 00:00:01.100 25746 INFO nova.compute.manager [-] instance spawned") is None
    assert p.parse(API.replace("status: 200", "status: 503"))["event.outcome"] == "failure"
    assert sniff([API] * 3) == "openstack_api"


def test_a_new_pattern_file_needs_no_code(tmp_path, monkeypatch):
    from etl.logs.parsers import custom

    (tmp_path / "gw.json").write_text(json.dumps({
        "dataset": "gw.api", "pattern": r"^(?P<ts>\S+) (?P<path>\S+) (?P<status>\d+) (?P<ms>\d+)ms$",
        "timestamp": {"capture": "ts", "format": "%Y-%m-%dT%H:%M:%S%z"},
        "fields": {"path": {"field": "url.original", "type": "url"},
                   "status": {"field": "http.response.status_code", "type": "integer"},
                   "ms": {"field": "event.duration", "type": "ms"}}}))
    monkeypatch.setenv("MONETL_LOG_FORMATS_DIR", str(tmp_path))
    custom._load_all.cache_clear()
    d = make_parser("gw", ParseContext.build("gw.log")).parse("2026-11-25T09:30:00+0800 /order 200 12ms")
    assert d["@timestamp"] == "2026-11-25T01:30:00.000000Z" and d["event.duration"] == 12_000_000
    (tmp_path / "bad.json").write_text(json.dumps({"dataset": "x", "pattern": "(?P<a>x)",
                                                   "timestamp": {"capture": "a", "format": "%Y"},
                                                   "fields": {"nope": "x.y"}}))
    custom._load_all.cache_clear()
    with pytest.raises(ConfigError, match="nope"):
        parser_class("gw")
    custom._load_all.cache_clear()
