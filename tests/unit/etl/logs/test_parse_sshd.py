"""sshd / auth.log parser on the real samples: exact fields on chosen lines, and every line of
each sample accounted for with counts equal to an independent reading of the file."""

from __future__ import annotations

import pytest

from etl.errors import ConfigError
from etl.logs.parsers import ParseContext, make_parser
from logs_parse_support import assert_accounted, parse_sample, text_lines


@pytest.fixture(scope="module")
def auth(settings, samples_dir, tmp_path_factory):
    path = samples_dir / "elastic_auth_log" / "auth.log"
    return path, parse_sample(settings, tmp_path_factory.mktemp("auth"), path, "sshd", year=2017)


def test_auth_log_every_line_taken(auth):
    path, parsed = auth
    assert_accounted(parsed, path)
    assert parsed.report.quarantined_total == 0
    assert parsed.report.skipped == 0


def test_auth_log_counts_match_an_independent_reading(auth):
    path, parsed = auth
    lines = text_lines(path)
    assert parsed.count(event__action="failed_password") == sum("Failed password for" in l for l in lines)
    assert parsed.count(event__action="accepted_password") == sum("Accepted password for" in l for l in lines)
    assert parsed.count(event__action="accepted_publickey") == sum("Accepted publickey for" in l for l in lines)
    assert parsed.count(event__action="invalid_user") == sum(": Invalid user " in l for l in lines)
    assert parsed.count(event__action="cron") == sum(" CRON[" in l for l in lines)
    assert parsed.count(event__action="sudo") == sum(" sudo: " in l and "COMMAND=" in l for l in lines)
    assert parsed.count(event__action="disconnected") == sum("]: Disconnected from " in l for l in lines)
    assert parsed.count(event__action="authentication_failure") == sum(
        "pam_unix(sshd:auth): authentication failure" in l for l in lines)
    failures = parsed.count(event__outcome="failure")
    assert failures > 1000  # the brute-force burst is in there


def test_auth_log_exact_fields(auth):
    path, parsed = auth
    lines = text_lines(path)
    n = next(i for i, l in enumerate(lines, 1) if "Failed password for invalid user" in l and "message repeated" not in l)
    doc = parsed.flat(n)
    line = lines[n - 1]
    user = line.split("invalid user ", 1)[1].split(" from ")[0]
    ip = line.split(" from ", 1)[1].split(" port ")[0]
    port = int(line.split(" port ", 1)[1].split()[0])
    assert doc["event.dataset"] == "sshd"
    assert doc["event.action"] == "failed_password"
    assert doc["event.outcome"] == "failure"
    assert doc["user.name"] == user and doc["user.invalid"] is True
    assert doc["source.ip"] == ip and doc["source.port"] == port
    assert doc["process.name"] == "sshd" and doc["host.name"] == "ip-10-77-20-248"
    assert doc["log.offset"] == n and doc["message"] == line
    first = parsed.flat(1)
    assert first["@timestamp"] == "2017-03-27T13:06:56.000000Z"
    assert first["event.action"] == "listening"


def test_message_repeated_is_unwrapped(auth):
    path, parsed = auth
    lines = text_lines(path)
    n = next(i for i, l in enumerate(lines, 1) if "message repeated 5 times: [ Failed password" in l)
    doc = parsed.flat(n)
    assert doc["event.action"] == "failed_password" and doc["event.repeated"] == 5


def test_fail2ban_sshd_sample(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "sshd.log"
    parsed = parse_sample(settings, tmp_path, path, "sshd", year=2020)
    assert_accounted(parsed, path)
    assert parsed.report.quarantined_total == 0
    lines = text_lines(path)
    assert parsed.count(event__action="failed_password") == sum("Failed password for" in l for l in lines)
    # line 4: IPv4 with port; line 5: IPv6; 'ROOT' is the user
    d4, d5 = parsed.flat(4), parsed.flat(5)
    assert (d4["user.name"], d4["source.ip"], d4["source.port"]) == ("ROOT", "194.117.26.69", 50273)
    assert d5["source.ip"] == "aaaa:bbbb:cccc:1234::1:1"
    # a host name where an address belongs goes to source.domain, never to the ip field
    d2 = parsed.flat(2)
    assert d2["event.action"] == "authentication_failure" and d2["source.domain"] == "example.com"
    assert "source.ip" not in d2
    # ISO 8601 header with offset, and RFC 5424 header
    iso = next(i for i, l in enumerate(lines, 1) if l.startswith("2015-04-16T18:02:50.321974"))
    assert parsed.flat(iso)["@timestamp"] == "2015-04-16T18:02:50.321974Z"
    rfc = next(i for i, l in enumerate(lines, 1) if l.startswith("<38>1 2019-07-08T17:40:16"))
    d = parsed.flat(rfc)
    assert d["@timestamp"] == "2019-07-08T21:40:16.954167Z" and d["user.name"] == "redmond"
    assert d["event.action"] == "failed_unknown"


def test_year_and_zone_come_from_settings():
    line = "Mar  7 18:53:24 bar sshd[1558]: Accepted password for known from 192.0.2.114 port 52100 ssh2"
    doc = make_parser("sshd", ParseContext.build("f", 2024, "Asia/Shanghai")).parse(line)
    assert doc["@timestamp"] == "2024-03-07T10:53:24.000000Z"
    assert doc["event.action"] == "accepted_password" and doc["event.outcome"] == "success"
    with pytest.raises(ConfigError, match="year"):
        make_parser("sshd", ParseContext.build("f", None, "UTC")).parse(line)


def test_sudo_line_fields():
    line = ("Apr 18 15:50:25 ip-10-77-20-248 sudo:   ubuntu : TTY=pts/0 ; PWD=/home/ubuntu ; USER=root ; "
            "COMMAND=/usr/bin/apt-get update")
    doc = make_parser("sshd", ParseContext.build("f", 2017)).parse(line)
    assert doc["event.action"] == "sudo" and doc["user.name"] == "ubuntu"
    assert doc["user.target.name"] == "root" and doc["process.command_line"] == "/usr/bin/apt-get update"
