"""Older sshd logs write each failed attempt twice (a `sshd(pam_unix)[pid]` PAM line and the
`sshd[pid]: Failed password` line of the same process): one attempt must count once. Lines
written for the test in the RHEL format, through the loader's own parse path."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from etl.logs import attempts
from etl.logs.jobs.common import load_rules
from etl.logs.load import FileReport, parse_documents
from etl.logs.parsers import ParseContext
from etl.quarantine import Quarantine

T0 = dt.datetime(2005, 6, 14, 15, 16, 1)


def stamp(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:>2} {t:%H:%M:%S}"


def pam(t, pid, rhost="218.188.2.4", user="root"):
    who = f"  user={user}" if user else ""
    return (f"{stamp(t)} combo sshd(pam_unix)[{pid}]: authentication failure; logname= uid=0 euid=0 "
            f"tty=NODEVssh ruser= rhost={rhost}{who}")


def failed(t, pid, ip="218.188.2.4", user="root", invalid=False):
    return f"{stamp(t)} combo sshd[{pid}]: Failed password for {'invalid user ' if invalid else ''}{user} from {ip} port 4711 ssh2"


def parse(settings, tmp_path, lines):
    path = tmp_path / "secure"
    path.write_text("\n".join(lines) + "\n")
    s = dataclasses.replace(settings, quarantine_dir=str(tmp_path / "q"))
    report = FileReport(str(path), "sshd")
    with Quarantine(s, "logs-sshd", "t") as q:
        docs = [src for _i, _id, src, _ref, _raw in
                parse_documents(path, "sshd", ParseContext.build("secure", 2005, "UTC", None), "t", report, q)]
    return report, docs


def counted(docs) -> int:
    """Documents the illegal_access rules count as a failed login (rules.json, `*` a prefix)."""
    wanted = load_rules()["illegal_access"]["login_failure_actions"]["sshd"]
    def hit(action):
        return any(action.startswith(w[:-1]) if w.endswith("*") else action == w for w in wanted)
    return sum(1 for d in docs if hit(d["event"]["action"]))


def actions(docs):
    return sorted(d["event"]["action"] for d in docs)


def test_each_pam_and_failed_password_pair_is_one_attempt(settings, tmp_path):
    lines = []
    for i in range(6):  # one connection per attempt, as the RHEL logs write them
        t = T0 + dt.timedelta(seconds=7 * i)
        lines += [pam(t, 19939 + i), failed(t + dt.timedelta(seconds=i % 2), 19939 + i)]
    report, docs = parse(settings, tmp_path, lines)
    assert report.parsed == len(docs) == 12  # every line stays indexed
    assert counted(docs) == 6
    assert actions(docs) == ["failed_password"] * 6 + ["pam_authentication_failure_paired"] * 6


def test_a_log_of_pam_lines_only_counts_each_of_them(settings, tmp_path):
    lines = [pam(T0 + dt.timedelta(seconds=i), 4242) for i in range(7)]
    _, docs = parse(settings, tmp_path, lines)
    assert counted(docs) == 7 and set(actions(docs)) == {"pam_authentication_failure"}


def test_invalid_user_sequence_counts_once(settings, tmp_path):
    t = T0
    lines = [f"{stamp(t)} combo sshd[2001]: Invalid user test from 218.188.2.4",
             f"{stamp(t)} combo sshd(pam_unix)[2001]: check pass; user unknown",
             pam(t, 2001, user=None),  # PAM names no user it does not know
             failed(t + dt.timedelta(seconds=2), 2001, user="test", invalid=True)]
    _, docs = parse(settings, tmp_path, lines)
    assert counted(docs) == 1
    assert actions(docs).count("pam_authentication_failure_paired") == 1


@pytest.mark.parametrize("other", [
    lambda t: failed(t, 3002),                                   # another process
    lambda t: failed(t, 3001, user="oracle"),                    # another user
    lambda t: failed(t, 3001, ip="192.0.2.9"),                   # another address
    lambda t: failed(t + dt.timedelta(seconds=6), 3001),         # too late to be the same attempt
])
def test_lines_of_different_attempts_are_not_paired(settings, tmp_path, other):
    _, docs = parse(settings, tmp_path, [pam(T0, 3001), other(T0)])
    assert counted(docs) == 2 and "pam_authentication_failure_paired" not in actions(docs)


def test_pairs_in_either_order_and_with_a_host_name_rhost(settings, tmp_path):
    lines = [failed(T0, 5001), pam(T0 + dt.timedelta(seconds=1), 5001),          # Failed line first
             pam(T0 + dt.timedelta(seconds=20), 5002, rhost="dialup-7.example.net"),
             failed(T0 + dt.timedelta(seconds=21), 5002)]                       # sshd logged the IP
    _, docs = parse(settings, tmp_path, lines)
    assert counted(docs) == 2 and actions(docs).count("pam_authentication_failure_paired") == 2


def test_one_failed_line_absorbs_one_pam_line(settings, tmp_path):
    # two PAM failures of one process (two tries on one connection), one Failed line logged
    lines = [pam(T0, 6001), pam(T0 + dt.timedelta(seconds=2), 6001), failed(T0 + dt.timedelta(seconds=3), 6001)]
    _, docs = parse(settings, tmp_path, lines)
    assert counted(docs) == 2


def test_held_back_lines_are_bounded_and_never_lost(monkeypatch):
    monkeypatch.setattr(attempts, "MAX_PENDING", 3)
    fed = []

    def items():
        for p in range(10):  # ten PAM lines of one second: none has a partner yet
            fed.append(p)
            yield {"@timestamp": "2005-06-14T15:16:01Z", "event.action": attempts.PAM, "process.pid": p,
                   "host.name": "h"}, p

    out = []
    for item in attempts.pair_attempts(items()):
        out.append(item[1])
        assert len(fed) - len(out) <= 3  # never more than MAX_PENDING held back
    assert sorted(out) == list(range(10))
