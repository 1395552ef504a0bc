"""SMTP notifications over real TLS (a local aiosmtpd server with a throw-away certificate made by
openssl): STARTTLS and SMTPS verify the certificate chain and the host name, and a password is
never sent over clear text unless explicitly allowed."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess

import pytest

from etl.config import Secret, load
from etl.notify.base import NotifyError
from etl.notify.smtp import SmtpNotifier

pytestmark = pytest.mark.integration

FINDING = {"job": "illegal_access", "rule": "brute_force", "severity": "high", "source": "203.0.113.45",
           "target": "bastion-01", "count": 130, "message": "130 failed logins", "first_seen": "2026-12-01T00:20:00Z",
           "last_seen": "2026-12-01T00:29:00Z", "fingerprint": "f1"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for the name `localhost` only (no IP address in it)."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    key, crt = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    def __init__(self):
        self.messages, self.logins = [], []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def _authenticator(sink):
    from aiosmtpd.smtp import AuthResult

    def check(server, session, envelope, mechanism, auth_data):
        sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    return check


@pytest.fixture(params=["starttls", "smtps"])
def server(request, cert):
    from aiosmtpd.controller import Controller

    crt, key = cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    sink = Sink()
    port = _free_port()
    if request.param == "starttls":
        controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                                authenticator=_authenticator(sink), auth_require_tls=True)
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="localhost",
                                ssl_context=context, authenticator=_authenticator(sink), auth_require_tls=False)
    controller.start()
    try:
        yield request.param, port, sink
    finally:
        controller.stop()


def _settings(mode: str, port: int, host: str, ca_file: str = "", user: str = "monetl", password: str = "s3cret-pw"):
    return dataclasses.replace(load(), smtp_port=port, notify_smtp_host=host, notify_smtp_to="secops@example.com",
                               notify_smtp_user=user, notify_smtp_password=Secret(password),
                               notify_smtp_starttls=mode == "starttls", notify_smtp_ssl=mode == "smtps",
                               notify_smtp_ca_file=ca_file)


def test_verified_tls_delivers_and_logs_in(server, cert):
    mode, port, sink = server
    SmtpNotifier(_settings(mode, port, "localhost", ca_file=str(cert[0]))).send([FINDING])
    assert len(sink.messages) == 1 and b"brute_force" in sink.messages[0]
    assert sink.logins == [("monetl", "s3cret-pw")]


def test_untrusted_certificate_is_refused(server):
    mode, port, sink = server
    with pytest.raises(NotifyError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed") as info:
        SmtpNotifier(_settings(mode, port, "localhost")).send([FINDING])
    assert "s3cret-pw" not in str(info.value)
    assert sink.messages == [] and sink.logins == []


def test_certificate_for_another_host_name_is_refused(server, cert):
    mode, port, sink = server
    # The certificate names `localhost`; connecting as 127.0.0.1 must fail the host-name check.
    with pytest.raises(NotifyError, match="(?i)mismatch|doesn't match|not valid for"):
        SmtpNotifier(_settings(mode, port, "127.0.0.1", ca_file=str(cert[0]))).send([FINDING])
    assert sink.messages == [] and sink.logins == []


def test_no_password_over_clear_text_unless_allowed():
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, authenticator=_authenticator(sink),
                            auth_require_tls=False)
    controller.start()
    try:
        plain = _settings("none", port, "127.0.0.1")
        with pytest.raises(NotifyError, match="clear-text"):
            SmtpNotifier(plain).send([FINDING])
        assert sink.messages == [] and sink.logins == []
        SmtpNotifier(dataclasses.replace(plain, notify_smtp_allow_plain_login=True)).send([FINDING])
        assert sink.logins == [("monetl", "s3cret-pw")] and len(sink.messages) == 1
        # Without a user nothing secret is sent, so clear text needs no permission.
        SmtpNotifier(dataclasses.replace(plain, notify_smtp_user="")).send([FINDING])
        assert len(sink.messages) == 2
    finally:
        controller.stop()
