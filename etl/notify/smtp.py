"""E-mail through any SMTP server (smtplib): STARTTLS and login when configured."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from etl.config import Settings
from etl.notify.base import NotifyError, subject, text


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
        self.timeout = timeout

    def send(self, findings: list[dict]) -> None:
        if not self.recipients:
            raise NotifyError("SMTP notifier has no recipients: set MONETL_NOTIFY_SMTP_TO")
        message = EmailMessage()
        message["Subject"] = subject(findings)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(text(findings))
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password.reveal())
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # smtplib messages name host/port and server replies, never the password.
            raise NotifyError(f"SMTP {self.host}:{self.port} did not take the notification: "
                              f"{type(exc).__name__}: {exc}") from None
