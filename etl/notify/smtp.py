"""E-mail through any SMTP server (smtplib). TLS is verified: STARTTLS (MONETL_NOTIFY_SMTP_STARTTLS)
and SMTPS (MONETL_NOTIFY_SMTP_SSL) check the server's certificate and host name against the system
CAs or MONETL_NOTIFY_SMTP_CA_FILE. A password is never sent over a clear-text connection unless
MONETL_NOTIFY_SMTP_ALLOW_PLAIN_LOGIN=1 says so (a relay on the same host)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from etl.config import Settings
from etl.notify.base import NotifyError, subject, text


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Certificate and host-name verification on (create_default_context), TLS 1.2 at least."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"SMTP CA file {ca_file}: cannot load it: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SmtpNotifier:
    name = "smtp"

    def __init__(self, settings: Settings, timeout: float = 30.0):
        self.host = settings.notify_smtp_host
        self.port = settings.smtp_port
        self.sender = settings.notify_smtp_from
        self.recipients = [a.strip() for a in settings.notify_smtp_to.split(",") if a.strip()]
        self.user = settings.notify_smtp_user
        self.password = settings.notify_smtp_password
        self.starttls = settings.notify_smtp_starttls
        self.smtps = settings.notify_smtp_ssl
        self.ca_file = settings.notify_smtp_ca_file
        self.allow_plain_login = settings.notify_smtp_allow_plain_login
        self.timeout = timeout

    def send(self, findings: list[dict]) -> None:
        if not self.recipients:
            raise NotifyError("SMTP notifier has no recipients: set MONETL_NOTIFY_SMTP_TO")
        encrypted = self.smtps or self.starttls
        if self.user and not encrypted and not self.allow_plain_login:
            raise NotifyError(f"SMTP {self.host}:{self.port}: refusing to send the password of {self.user} "
                              "over a clear-text connection; set MONETL_NOTIFY_SMTP_STARTTLS=1 or "
                              "MONETL_NOTIFY_SMTP_SSL=1 (or MONETL_NOTIFY_SMTP_ALLOW_PLAIN_LOGIN=1 for a local relay)")
        message = EmailMessage()
        message["Subject"] = subject(findings)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(text(findings))
        context = tls_context(self.ca_file) if encrypted else None
        try:
            if self.smtps:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls and not self.smtps:
                    smtp.starttls(context=context)
                if self.user:
                    smtp.login(self.user, self.password.reveal())
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # smtplib and ssl messages name host/port, server replies and certificate problems,
            # never the password.
            raise NotifyError(f"SMTP {self.host}:{self.port} did not take the notification: "
                              f"{type(exc).__name__}: {exc}") from None
