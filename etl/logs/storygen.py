"""SYNTHETIC current auth and mail logs for the demo, in the standard formats any parser reads
(OpenSSH/PAM lines of a Debian auth.log, Postfix lines of a mail.log; classic syslog stamps, UTC).

No public log is recent, so the demo writes these for its report days: a quiet background
(staff logging in with keys from the office network, mail delivered) plus the incidents the
log jobs exist for, at fixed UTC times of every day (early, so a demo run later the same day sees
them today too):

- 00:20 an SSH brute force: 203.0.113.45 (TEST-NET-3) tries root/admin ~130 times in 9 minutes;
- 01:05 a password spray: 198.51.100.23 (TEST-NET-2) tries 24 user names once each, then gets in
  as one of them (success after failures, from outside the allow-list);
- 11:40 root runs sudo on a trading host (19:40 Asia/Shanghai: privileged, after business hours);
- 01:00 a bounce wave: 40 minutes of trade confirmations to one client domain bounce (5.1.1/5.4.4).

File names start with `synthetic-` and a README beside them says so (syslog has no comments). Deterministic for a (day, seed); lines after `until`
are not written (nothing is dated in the future)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

BRUTE_IP, SPRAY_IP = "203.0.113.45", "198.51.100.23"
STAFF = ["zhang.wei", "li.na", "wang.fang", "chen.jie", "liu.yang", "ops", "deploy"]
SPRAY_USERS = ["trader01", "trader02", "trader03", "trader04", "trader05", "trader06", "trader07", "trader08",
               "backoffice", "risk", "compliance", "settlement", "support", "helpdesk", "test", "guest",
               "oracle", "postgres", "jenkins", "git", "ftp", "www", "backup", "monitor"]
SPRAY_WINNER = "trader07"
SSH_HOSTS = ["bastion-01", "trading-02"]
MAIL_HOST = "mail-01"
BOUNCE_DOMAIN = "client-mail.example.net"
GOOD_DOMAINS = ["qq.com", "163.com", "126.com", "sina.com", "corp.example.com", "example.org"]


def _stamp(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def _rng(kind: str, day: dt.date, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), sum(map(ord, kind))])


def auth_lines(day: dt.date, seed: int = 1) -> list[tuple[dt.datetime, str]]:
    """(UTC time, line) of one UTC day's sshd/sudo events, unsorted."""
    rng = _rng("auth", day, seed)
    t0 = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    out: list[tuple[dt.datetime, str]] = []
    pid = iter(range(int(rng.integers(20000, 30000)), 10**6))

    def add(t: dt.datetime, host: str, prog: str, msg: str) -> None:
        out.append((t, f"{_stamp(t)} {host} {prog}: {msg}"))

    # Background: staff log in with keys from the office network during the working day (CST).
    for _ in range(60):
        t = t0 + dt.timedelta(seconds=int(rng.integers(0, 12 * 3600)))  # 08:00-20:00 CST
        user, host = STAFF[int(rng.integers(len(STAFF)))], SSH_HOSTS[int(rng.integers(len(SSH_HOSTS)))]
        ip, port, p = f"10.20.{int(rng.integers(1, 40))}.{int(rng.integers(2, 250))}", int(rng.integers(40000, 65000)), next(pid)
        add(t, host, f"sshd[{p}]", f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:"
            f"{rng.bytes(12).hex()}")
        add(t, host, f"sshd[{p}]", f"pam_unix(sshd:session): session opened for user {user}(uid=1001) by (uid=0)")
        end = t + dt.timedelta(seconds=int(rng.integers(60, 3600)))
        add(end, host, f"sshd[{p}]", f"pam_unix(sshd:session): session closed for user {user}")
    # Brute force on the bastion: root and admin, a guess every ~4 s for 9 minutes.
    t = t0 + dt.timedelta(hours=0, minutes=20)
    for i in range(130):
        t += dt.timedelta(seconds=int(rng.integers(2, 7)))
        p, port = next(pid), int(rng.integers(30000, 65000))
        user = "root" if i % 3 else "admin"
        if user == "admin":
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Invalid user admin from {BRUTE_IP} port {port}")
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Failed password for invalid user admin from {BRUTE_IP} port {port} ssh2")
        else:
            add(t, SSH_HOSTS[0], f"sshd[{p}]", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
                f"tty=ssh ruser= rhost={BRUTE_IP}  user=root")
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Failed password for root from {BRUTE_IP} port {port} ssh2")
        add(t + dt.timedelta(seconds=1), SSH_HOSTS[0], f"sshd[{p}]",
            f"Connection closed by authenticating user {user} {BRUTE_IP} port {port} [preauth]")
    # Password spray: one try per account name, slowly, then one of them works.
    t = t0 + dt.timedelta(hours=1, minutes=5)
    for user in SPRAY_USERS:
        t += dt.timedelta(seconds=int(rng.integers(40, 90)))
        p, port = next(pid), int(rng.integers(30000, 65000))
        known = user.startswith("trader") or user in ("backoffice", "risk", "compliance", "settlement")
        if known:
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Failed password for {user} from {SPRAY_IP} port {port} ssh2")
        else:
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Invalid user {user} from {SPRAY_IP} port {port}")
            add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Failed password for invalid user {user} from {SPRAY_IP} port {port} ssh2")
    t += dt.timedelta(seconds=75)
    p, port = next(pid), int(rng.integers(30000, 65000))
    add(t, SSH_HOSTS[0], f"sshd[{p}]", f"Accepted password for {SPRAY_WINNER} from {SPRAY_IP} port {port} ssh2")
    add(t, SSH_HOSTS[0], f"sshd[{p}]", f"pam_unix(sshd:session): session opened for user {SPRAY_WINNER}(uid=1107) by (uid=0)")
    # root at 19:40 CST on a trading host.
    t = t0 + dt.timedelta(hours=11, minutes=40)
    add(t, "trading-02", "sudo", "    ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/systemctl restart gateway")
    add(t, "trading-02", "sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by ops(uid=1001)")
    return out


def mail_lines(day: dt.date, seed: int = 1) -> list[tuple[dt.datetime, str]]:
    """(UTC time, line) of one UTC day's Postfix deliveries: ~600 delivered mails and a wave of
    bounces to one client domain from 01:00 UTC for 40 minutes."""
    rng = _rng("mail", day, seed)
    t0 = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    out: list[tuple[dt.datetime, str]] = []
    qids: set[str] = set()

    def message(t: dt.datetime, rcpt: str, bounce: bool) -> None:
        qid = f"{int(rng.integers(0x100000000, 0xFFFFFFFFFF)):X}"
        while qid in qids:
            qid = f"{int(rng.integers(0x100000000, 0xFFFFFFFFFF)):X}"
        qids.add(qid)
        p = int(rng.integers(1000, 30000))
        sender = "confirm@broker.example.com" if bounce else "notify@broker.example.com"
        out.append((t, f"{_stamp(t)} {MAIL_HOST} postfix/pickup[{p}]: {qid}: uid=1002 from=<{sender.split('@')[0]}>"))
        out.append((t, f"{_stamp(t)} {MAIL_HOST} postfix/cleanup[{p + 1}]: {qid}: message-id=<{qid}.{day:%Y%m%d}@broker.example.com>"))
        out.append((t, f"{_stamp(t)} {MAIL_HOST} postfix/qmgr[812]: {qid}: from=<{sender}>, size={int(rng.integers(900, 40000))}, nrcpt=1 (queue active)"))
        delay = round(float(rng.gamma(2.0, 0.4)) + 0.2, 1)
        d = t + dt.timedelta(seconds=delay)
        domain = rcpt.split("@")[1]
        relay = f"mx{int(rng.integers(1, 3))}.{domain}[192.0.2.{int(rng.integers(1, 250))}]:25"  # TEST-NET-1
        if bounce:
            if rng.random() < 0.7:
                result = (f"dsn=5.1.1, status=bounced (host {relay.rsplit(':', 1)[0]} said: 550 5.1.1 <{rcpt}>: "
                          "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))")
            else:
                relay = "none"
                result = (f"dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for "
                          f"name={domain} type=MX: Host not found)")
        else:
            result = f"dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {rng.bytes(5).hex().upper()})"
        out.append((d, f"{_stamp(d)} {MAIL_HOST} postfix/smtp[{p + 2}]: {qid}: to=<{rcpt}>, relay={relay}, "
                       f"delay={delay}, delays=0.05/0.01/{delay / 2:.2f}/{delay / 2:.2f}, {result}"))
        out.append((d, f"{_stamp(d)} {MAIL_HOST} postfix/qmgr[812]: {qid}: removed"))

    for _ in range(600):
        t = t0 + dt.timedelta(seconds=int(rng.integers(0, 86400)))
        user = f"client{int(rng.integers(1000, 99999))}"
        message(t, f"{user}@{GOOD_DOMAINS[int(rng.integers(len(GOOD_DOMAINS)))]}", bounce=False)
    for i in range(120):
        t = t0 + dt.timedelta(hours=1, seconds=int(i * 20 + rng.integers(0, 20)))
        message(t, f"acct{int(rng.integers(10000, 99999))}@{BOUNCE_DOMAIN}", bounce=True)
    return out


def write_day(kind: str, day: dt.date, folder: Path, until: dt.datetime, seed: int = 1) -> tuple[Path, int]:
    """Write `kind` ("auth" or "mail") for one UTC day to folder/<kind>-<day>.log; returns the file
    and its number of log lines (the header comment not counted)."""
    lines = sorted((auth_lines if kind == "auth" else mail_lines)(day, seed), key=lambda tl: tl[0])
    lines = [line for t, line in lines if t < until]
    folder.mkdir(parents=True, exist_ok=True)
    # Syslog files have no comment syntax: the name and a README beside them say they are synthetic.
    path = folder / f"synthetic-{kind}-{day:%Y-%m-%d}.log"
    (folder / "README.synthetic.txt").write_text(
        "SYNTHETIC logs written by `monetl demo` (etl/logs/storygen.py, etl/logs/tradegen.py): no real host, "
        "person or trade. Stamps are UTC.\n", encoding="utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path, len(lines)
