"""No secret from the settings leaks during a (reduced) demo run: the pipeline commands run as
`monetl -v ...` (debug logging on: the strictest case) with real secrets in use: a freshly generated
Zabbix API token, Elasticsearch basic-auth credentials (the local node has no security and ignores
them, but every request carries them), an SMTP password sent to a local sink, a Tableau token and a
WeChat robot URL that are configured but unused. The oracle, independent of monetl: a plain substring
search for each secret in the commands' output, every file under the services' log folder and the
run's quarantine folder, and /proc/*/cmdline of every process sampled while the commands run."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from etl.config import load

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFIX = "tsecret"


def _cmdlines() -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue  # the process ended meanwhile
    return out


class CmdlineSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.seen.update(_cmdlines())
            time.sleep(0.05)


@pytest.fixture
def zabbix_token(zabbix_service, settings):
    from etl.seed import zabbix_api

    api = zabbix_api(settings)
    admin = api.user.get(filter={"username": settings.zabbix_user}, output=["userid"])[0]["userid"]
    tokenid = api.token.create(name=f"monetl-secret-test-{uuid.uuid4().hex[:8]}", userid=admin)["tokenids"][0]
    token = api.token.generate(tokenid)[0]["token"]
    try:
        yield token
    finally:
        api.token.delete(tokenid)
        api.logout()


@pytest.fixture
def smtp_sink():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received = []

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=lambda *a: AuthResult(success=True))
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_no_secret_in_logs_cmdlines_or_quarantine(tmp_path, settings, zabbix_token, elasticsearch_service,
                                                  smtp_sink, _cleanup_indices):
    from etl.logs import storygen

    smtp_port, mails = smtp_sink
    secret_values = {
        "zabbix token": zabbix_token,
        "es password": "es-pw-" + secrets.token_hex(12),
        "smtp password": "smtp-pw-" + secrets.token_hex(12),
        "tableau token": "tab-" + secrets.token_hex(12),
        "wecom key": "wecom-" + secrets.token_hex(12),
    }
    quarantine = tmp_path / "quarantine"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONETL_")}
    env.update({
        "PYTHONPATH": str(REPO), "MONETL_ES_INDEX_PREFIX": PREFIX, "MONETL_QUARANTINE_DIR": str(quarantine),
        "MONETL_LAKE_URL": f"file://{tmp_path / 'lake'}", "MONETL_EXTRACTS_DIR": str(tmp_path / "extracts"),
        "MONETL_ZABBIX_TOKEN": zabbix_token,
        "MONETL_ES_USER": "monetl-secret-test", "MONETL_ES_PASSWORD": secret_values["es password"],
        "MONETL_NOTIFY_SMTP_TO": "secops@example.com", "MONETL_NOTIFY_SMTP_HOST": "127.0.0.1",
        "MONETL_SMTP_PORT": str(smtp_port), "MONETL_NOTIFY_SMTP_USER": "monetl",
        "MONETL_NOTIFY_SMTP_PASSWORD": secret_values["smtp password"], "MONETL_NOTIFY_SMTP_ALLOW_PLAIN_LOGIN": "1",
        "MONETL_NOTIFY_CHANNELS": "smtp", "MONETL_NOTIFY_MIN_SEVERITY": "high",
        "MONETL_TABLEAU_TOKEN_NAME": "monetl", "MONETL_TABLEAU_TOKEN_SECRET": secret_values["tableau token"],
        "MONETL_NOTIFY_WECOM_URL": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={secret_values['wecom key']}",
    })
    if "MONETL_HOME" in os.environ:  # the services' home, so their logs are the ones read below
        env["MONETL_HOME"] = os.environ["MONETL_HOME"]
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    day = now.date() - dt.timedelta(days=1)
    auth_log, _ = storygen.write_day("auth", day, tmp_path / "logs", until=now)
    # One line no parser reads, carrying a secret: it is quarantined, and must be so redacted.
    with open(auth_log, "a") as fh:
        fh.write(f"not a syslog line: db login password={secret_values['es password']}\n")
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%MZ")  # noqa: E731
    commands = [
        ["ingest", "zabbix", "--mode", "api", "--start", iso(now - dt.timedelta(minutes=20)), "--end", iso(now),
         "--no-progress"],
        ["gaps", "zabbix", "--start", iso(now - dt.timedelta(minutes=20)), "--end", iso(now), "--bucket", "10m"],
        ["logs", "load", "--format", "sshd", "--year", str(day.year), "--tz", "UTC", str(auth_log)],
        ["logs", "run", "illegal_access", "--start", f"{day}T00:00Z", "--end", f"{day + dt.timedelta(days=1)}T00:00Z",
         "--notify"],
    ]
    sampler = CmdlineSampler()
    sampler.start()
    outputs = []
    try:
        for argv in commands:
            proc = subprocess.run([sys.executable, "-m", "etl", "-v", *argv], capture_output=True, text=True,
                                  env=env, cwd=REPO, timeout=600)
            outputs.append((argv, proc.stdout + proc.stderr))
            assert proc.returncode in (0, 1), f"{argv}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    finally:
        sampler.stop.set()
        sampler.join()
    # The secrets were really used: the token logged in, the SMTP password reached the sink's login.
    assert "zabbix/api" in outputs[0][1]
    assert mails, "the high findings of the brute force were not mailed: the SMTP password was never used"
    quarantined = list(quarantine.rglob("*.jsonl"))
    assert quarantined, "expected the unparseable line in a quarantine file"

    def leaks(text: str) -> list[str]:
        return [name for name, value in secret_values.items() if value in text]

    problems = []
    for argv, text in outputs:
        problems += [f"output of monetl {' '.join(argv[:2])}: {n}" for n in leaks(text)]
    for cmdline in sampler.seen:
        problems += [f"process argv {cmdline[:120]!r}: {n}" for n in leaks(cmdline)]
    for folder in (Path(load().logs_dir), quarantine, Path(load().home) / "airflow" / "logs"):
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file() and path.stat().st_size < 200 * 1024 * 1024:
                text = path.read_bytes().decode("utf-8", "replace")
                problems += [f"{path}: {n}" for n in leaks(text)]
    assert not problems, "secrets leaked:\n" + "\n".join(problems)


@pytest.fixture
def _cleanup_indices(settings):
    yield
    from etl.search.client import es_client

    es = es_client(settings)
    for pattern in (f"{PREFIX}-points-*", f"{PREFIX}-logs-*", f"{PREFIX}-findings"):
        for name in es.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True):
            es.indices.delete(index=name)


def test_the_cmdline_oracle_sees_a_secret_in_argv():
    """The /proc sampler above can fail: a process started with a secret in its argv is seen."""
    marker = "argv-secret-" + secrets.token_hex(8)
    sampler = CmdlineSampler()
    sampler.start()
    try:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", marker], check=True)
    finally:
        sampler.stop.set()
        sampler.join()
    assert any(marker in c for c in sampler.seen)
