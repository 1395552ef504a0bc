"""`dovecot`: Dovecot IMAP/POP3/submission/managesieve login and auth lines through syslog,
multilog (TAI64N) or dovecot's own log file (ISO time, no zone: ctx.tz).

Actions: auth_failed (login gave up after failed authentication, `(auth failed, N attempts)`,
`proxy dest auth failed`; failure), password_mismatch, unknown_user, authentication_failure
(auth workers: pam/sql/ldap/passwd-file, pam_unix; failure), plaintext_auth_denied (failure),
login (success), no_auth_attempts, disconnected, other (unknown). rip -> source.ip, lip ->
destination.ip, user=<> -> user.name, method= -> dovecot.auth_method, the service (imap-login,
pop3-login, ...) -> dovecot.service, attempts -> dovecot.auth_attempts."""

from __future__ import annotations

import re

from etl.logs.parsers.base import LineParser, put_address
from etl.logs.parsers.syslog import header_doc
from etl.redact import GIVEN_PASSWORD

_SERVICE = re.compile(r"\b((?:imap|pop3|submission|managesieve|lmtp)-login): ")
_USER = re.compile(r"\buser=<([^>]*)>")
_RIP = re.compile(r"\brip=([0-9A-Fa-f:.]+)")
_LIP = re.compile(r"\blip=([0-9A-Fa-f:.]+)")
_METHOD = re.compile(r"\bmethod=(\w[\w-]*)")
_ATTEMPTS = re.compile(r"auth failed, (\d+) attempts")
_WORKER = re.compile(r"\b(pam|sql|ldap|passwd-file|passwd|shadow|checkpassword)\(([^,()]*),([^,()]*)(?:,[^()]*)?\): (.*)$")
_AUTH_CTX = re.compile(r"\bauth\(([^,()]*),([^,()]*),[^)]*\)")
# Dovecot's auth debug logging can echo the attempted password; it never reaches Elasticsearch
# (nor the quarantine: etl.redact).
_GIVEN_PASSWORD = GIVEN_PASSWORD
_PAM_UNIX = re.compile(r"pam_unix\([^:)]+:auth\): authentication failure;.*?rhost=(\S*)(?:\s+user=(\S+))?")


class DovecotParser(LineParser):
    dataset = "dovecot"
    needs_year = True

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        doc, h = header_doc(line, self.ctx)
        if "given password:" in line:
            doc["message"] = _GIVEN_PASSWORD.sub("(given password: ***)", line)
        text = _GIVEN_PASSWORD.sub("(given password: ***)", h.rest)  # the program token can carry the user and address: auth(user,ip,...)<id>:
        s = _SERVICE.search(text)
        if s:
            doc["dovecot.service"] = s.group(1)
        u = _USER.search(text)
        if u and u.group(1):
            doc["user.name"] = u.group(1)
        r = _RIP.search(text)
        if r:
            put_address(doc, r.group(1))
        lip = _LIP.search(text)
        if lip:
            put_address(doc, lip.group(1), "destination")
        method = _METHOD.search(text)
        if method:
            doc["dovecot.auth_method"] = method.group(1)
        a = _ATTEMPTS.search(text)
        if a:
            doc["dovecot.auth_attempts"] = int(a.group(1))
        self._classify(doc, text)
        return doc

    @staticmethod
    def _classify(doc: dict, text: str) -> None:
        def act(action: str, outcome: str) -> None:
            doc["event.action"], doc["event.outcome"] = action, outcome

        w = _WORKER.search(text) or None
        ctx_user = _AUTH_CTX.search(text)
        if w or ctx_user:
            if w:
                user, ip, reason = w.group(2), w.group(3), w.group(4)
            else:
                user, ip, reason = ctx_user.group(1), ctx_user.group(2), text[ctx_user.end():]
            if user:
                doc["user.name"] = user
            if ip and "source.ip" not in doc:
                put_address(doc, ip)
            doc["event.reason"] = reason.strip()
            low = reason.lower()
            if "unknown user" in low or "user not known" in low:
                act("unknown_user", "failure")
            elif "mismatch" in low or "invalid credentials" in low:
                act("password_mismatch", "failure")
            elif "failed" in low or "denied" in low:
                act("authentication_failure", "failure")
            else:
                act("other", "unknown")
            return
        p = _PAM_UNIX.search(text)
        if p:
            put_address(doc, p.group(1) or None)
            if p.group(2):
                doc["user.name"] = p.group(2)
            act("authentication_failure", "failure")
            return
        if "auth failed" in text:
            act("auth_failed", "failure")
        elif "plaintext auth" in text:
            act("plaintext_auth_denied", "failure")
        elif "Login: " in text:
            act("login", "success")
        elif "no auth attempts" in text or "before auth was ready" in text or "didn't finish SASL auth" in text:
            act("no_auth_attempts", "unknown")
        elif "Disconnected" in text or "Login aborted" in text:
            act("disconnected", "unknown")
        else:
            act("other", "unknown")
