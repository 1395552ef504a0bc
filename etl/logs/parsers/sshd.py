"""`sshd` format: a Linux auth.log (or any syslog file of sshd lines). Every syslog line is taken:
sshd events get an action naming what happened, sudo/su/cron/session lines their own action,
anything else from another program action `other` (dataset stays `sshd`: the file is the unit).

Actions (event.outcome): failed_password, failed_publickey, failed_keyboard_interactive,
failed_hostbased, failed_none, failed_unknown (failure); invalid_user (failure);
invalid_user_request (failure, the preauth echo of invalid_user - count one or the other);
accepted_password, accepted_publickey, accepted_<method> (success); authentication_failure
(pam_unix / PAM errors, failure); check_pass (failure); max_auth_attempts, too_many_auth_failures,
pam_more_failures, user_not_allowed, root_login_refused (failure); disconnected,
received_disconnect, connection_closed, connection_reset, connection, no_identification,
bad_protocol, negotiation_failed, listening (unknown); reverse_mapping_mismatch,
connection_refused (failure); session_opened, session_closed (success);
sudo (success, or failure for refused commands), su, cron, other (unknown).
Older (RHEL/Fedora) PAM headers `sshd(pam_unix)[pid]: authentication failure; ... rhost=H user=U`
give pam_authentication_failure (failure, counted as an attempt; log.logger is the module); where
the same process also logs `Failed password`/`Invalid user` for it, the loader renames the PAM
line pam_authentication_failure_paired (not counted: etl/logs/attempts.py); ftpd: ftp_connection (unknown), ftp_login_failed (failure); klogind/krshd:
kerberos_auth_failed (failure). `rhost=` may hold a host name: it becomes source.domain.
`message repeated N times: [ X ]` is parsed as X with event.repeated = N (the loader then
stores N documents)."""

from __future__ import annotations

import re

from etl.logs.parsers.base import LineError, LineParser, put_address, put_port
from etl.logs.parsers.syslog import header_doc

_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]$")
_FAILED = re.compile(r"Failed ([\w/-]+) for (invalid user )?(.*?) from (\S+?)(?: port (\d+))?(?: ssh\d?)?(?:: .*)?$")
_ACCEPTED = re.compile(r"Accepted ([\w/-]+) for (\S+) from (\S+) port (\d+)")
_INVALID = re.compile(r"^Invalid user (.*?) from (\S+?)(?: port (\d+))?\s*$")
_INVALID_REQ = re.compile(r"input_userauth_request: invalid user (.*?) \[preauth\]")
_PAM_FAIL = re.compile(r"pam_unix\([^:)]+:auth\): authentication failure;.*?rhost=(\S*)(?:\s+user=(\S+))?")
_PAM_ERR = re.compile(r"error: PAM: (?:[Aa]uthentication (?:failure|error)|User not known[^:]*?) for (?:illegal user )?(\S+) from (\S+)")
_CHECK_PASS = re.compile(r"pam_unix\([^:)]+:auth\): check pass; user (\S+)")
_MORE = re.compile(r"PAM \d+ more authentication failures?;.*?rhost=(\S*)(?:\s+user=(\S+))?")
_MAX = re.compile(r"maximum authentication attempts exceeded for (?:invalid user )?(\S+) from (\S+) port (\d+)")
_TOO_MANY = re.compile(r"Disconnecting(?::| invalid user (\S+) (\S+) port (\d+):) Too many authentication failures(?: for (?:invalid user )?(\S+))?")
_NOT_ALLOWED = re.compile(r"User (\S+) (?:from (\S+) )?not allowed because")
_ROOT_REFUSED = re.compile(r"ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?(?: |$)")
_DISCONNECTED = re.compile(r"^Disconnected from (?:(?:invalid|authenticating) user (\S*) )?(\S+) port (\d+)")
_RECEIVED_DISC = re.compile(r"Received disconnect from ([^\s:]+|[0-9a-fA-F:]+?)(?: port (\d+))?:")
_CLOSED = re.compile(r"Connection (closed|reset) by (?:(?:invalid|authenticating) user (\S*) )?(\S+?)(?: port (\d+))?(?: \[preauth\])?$")
_CONNECTION = re.compile(r"^Connection from (\S+?)(?: port (\d+))?(?: |$)")
_BREAKIN = re.compile(r"^Address (\S+) maps to .*POSSIBLE BREAK-IN ATTEMPT")
_REFUSED = re.compile(r"^refused connect from .*\((\S+)\)$")
_NO_IDENT = re.compile(r"Did not receive identification string from (\S+?)(?: port (\d+))?$")
_BAD_PROTO = re.compile(r"Bad protocol version identification .* from (\S+?)(?: port (\d+))?$")
_NEGOTIATE = re.compile(r"Unable to negotiate with (\S+) port (\d+)")
_SESSION = re.compile(r"(?:pam_unix\([^:)]+:session\): |^)session (opened|closed) for user (\S+)")
_SUDO = re.compile(r"^\s*(\S+) : (.*?)(?:TTY=\S+ ; )?PWD=\S* ; USER=(\S+) ;(?: [A-Z]+=\S* ;)* COMMAND=(.*)$")
_SU = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)")
_OLD_PAM_FAIL = re.compile(r"^authentication failure;.*?\brhost=(\S*)(?:\s+user=(\S+))?")
_FTP_CONNECTION = re.compile(r"^connection from (\S+?)(?: \(([^)]*)\))?(?: at |$)")
_FTP_FAILED = re.compile(r"(?:FTP LOGIN FAILED FROM ([^\s,]+)(?:, (\S+))?"
                         r"|FAIL LOGIN: Client \"([^\"]+)\""
                         r"|\((?:\S+\[)?([0-9A-Fa-f:.]+)\]?\) - USER (\S+) \(Login failed\))")
_FTP_USER = re.compile(r"^\[(\S+)\] FAIL LOGIN")
_KRB_FAILED = re.compile(r"Authentication failed from (\S+?)(?: \(([^)]*)\))?:")
_FTP_PROGRAMS = {"ftpd", "in.ftpd", "vsftpd", "proftpd", "pure-ftpd", "wu-ftpd", "ftp"}
_KRB_PROGRAMS = {"klogind", "krshd", "kshd", "eklogin", "kshell"}


class SshdParser(LineParser):
    dataset = "sshd"
    needs_year = True

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        doc, h = header_doc(line, self.ctx)
        msg = h.message
        m = _REPEATED.search(msg)
        if m:
            doc["event.repeated"] = int(m.group(1))
            msg = m.group(2)
        prog = (h.program or "").lower()
        if h.module:
            doc["log.logger"] = h.module
            m = _OLD_PAM_FAIL.match(msg)
            if m:
                _set(doc, "pam_authentication_failure", "failure", user=m.group(2), addr=m.group(1))
                return doc
        if prog in _FTP_PROGRAMS:
            self._ftp(doc, msg)
        elif prog in _KRB_PROGRAMS:
            self._kerberos(doc, msg)
        elif prog == "sudo":
            self._sudo(doc, msg)
        elif prog == "cron":
            _set(doc, "cron", "unknown")
        elif prog == "su":
            self._su(doc, msg)
        else:
            self._sshd(doc, msg)
        return doc

    @staticmethod
    def _sudo(doc: dict, msg: str) -> None:
        m = _SUDO.match(msg)
        if m:
            refused = "command not allowed" in m.group(2) or "incorrect password" in m.group(2)
            _set(doc, "sudo", "failure" if refused else "success", user=m.group(1))
            doc["user.target.name"] = m.group(3)
            doc["process.command_line"] = m.group(4)
        elif not _session(doc, msg):
            _set(doc, "sudo", "unknown")

    @staticmethod
    def _ftp(doc: dict, msg: str) -> None:
        m = _FTP_CONNECTION.match(msg)
        if m:
            _set(doc, "ftp_connection", "unknown", addr=m.group(1))
            if m.group(2) and m.group(2) != m.group(1) and "source.domain" not in doc:
                doc["source.domain"] = m.group(2)
            return
        m = _FTP_FAILED.search(msg)
        if m:
            wu_host, wu_user, vs_client, pro_ip, pro_user = m.groups()
            u = _FTP_USER.match(msg)
            _set(doc, "ftp_login_failed", "failure", user=wu_user or pro_user or (u.group(1) if u else None),
                 addr=wu_host or vs_client or pro_ip)
            return
        if not _session(doc, msg):
            _set(doc, "other", "unknown")

    @staticmethod
    def _kerberos(doc: dict, msg: str) -> None:
        m = _KRB_FAILED.search(msg)
        if m:
            _set(doc, "kerberos_auth_failed", "failure", addr=m.group(1))
            return
        if "authentication failed" in msg.lower():
            _set(doc, "kerberos_auth_failed", "failure")
            return
        _set(doc, "other", "unknown")

    @staticmethod
    def _su(doc: dict, msg: str) -> None:
        m = _SU.search(msg)
        if m:
            _set(doc, "su", "success" if m.group(1) == "Successful" else "failure", user=m.group(3))
            doc["user.target.name"] = m.group(2)
        elif not _session(doc, msg):
            _set(doc, "su", "unknown")

    @staticmethod
    def _sshd(doc: dict, msg: str) -> None:
        m = _FAILED.search(msg)
        if m:
            method = m.group(1).split("/")[0].replace("-", "_")
            _set(doc, f"failed_{method}", "failure", user=m.group(3), addr=m.group(4), port=m.group(5))
            if m.group(2):
                doc["user.invalid"] = True
            return
        m = _ACCEPTED.search(msg)
        if m:
            _set(doc, f"accepted_{m.group(1).split('/')[0].replace('-', '_')}", "success",
                 user=m.group(2), addr=m.group(3), port=m.group(4))
            return
        m = _INVALID.search(msg)
        if m:
            _set(doc, "invalid_user", "failure", user=m.group(1), addr=m.group(2), port=m.group(3))
            doc["user.invalid"] = True
            return
        m = _INVALID_REQ.search(msg)
        if m:
            _set(doc, "invalid_user_request", "failure", user=m.group(1))
            return
        m = _PAM_FAIL.search(msg)
        if m:
            _set(doc, "authentication_failure", "failure", user=m.group(2), addr=m.group(1))
            return
        m = _PAM_ERR.search(msg)
        if m:
            _set(doc, "authentication_failure", "failure", user=m.group(1), addr=m.group(2))
            return
        m = _CHECK_PASS.search(msg)
        if m:
            _set(doc, "check_pass", "failure")
            return
        m = _MORE.search(msg)
        if m:
            _set(doc, "pam_more_failures", "failure", user=m.group(2), addr=m.group(1))
            return
        m = _MAX.search(msg)
        if m:
            _set(doc, "max_auth_attempts", "failure", user=m.group(1), addr=m.group(2), port=m.group(3))
            return
        m = _TOO_MANY.search(msg)
        if m:
            _set(doc, "too_many_auth_failures", "failure", user=m.group(1) or m.group(4),
                 addr=m.group(2), port=m.group(3))
            return
        m = _NOT_ALLOWED.search(msg)
        if m:
            _set(doc, "user_not_allowed", "failure", user=m.group(1), addr=m.group(2))
            return
        m = _ROOT_REFUSED.search(msg)
        if m:
            _set(doc, "root_login_refused", "failure", user="root", addr=m.group(1), port=m.group(2))
            return
        m = _DISCONNECTED.search(msg)
        if m:
            _set(doc, "disconnected", "unknown", user=m.group(1), addr=m.group(2), port=m.group(3))
            return
        m = _RECEIVED_DISC.search(msg)
        if m:
            _set(doc, "received_disconnect", "unknown", addr=m.group(1), port=m.group(2))
            return
        m = _CLOSED.search(msg)
        if m:
            _set(doc, f"connection_{m.group(1)}", "unknown", user=m.group(2), addr=m.group(3), port=m.group(4))
            return
        m = _CONNECTION.search(msg)
        if m:
            _set(doc, "connection", "unknown", addr=m.group(1), port=m.group(2))
            return
        m = _BREAKIN.search(msg)
        if m:
            _set(doc, "reverse_mapping_mismatch", "failure", addr=m.group(1))
            return
        m = _REFUSED.search(msg)
        if m:
            _set(doc, "connection_refused", "failure", addr=m.group(1))
            return
        m = _NO_IDENT.search(msg)
        if m:
            _set(doc, "no_identification", "unknown", addr=m.group(1), port=m.group(2))
            return
        m = _BAD_PROTO.search(msg)
        if m:
            _set(doc, "bad_protocol", "unknown", addr=m.group(1), port=m.group(2))
            return
        m = _NEGOTIATE.search(msg)
        if m:
            _set(doc, "negotiation_failed", "unknown", addr=m.group(1), port=m.group(2))
            return
        if _session(doc, msg):
            return
        if msg.startswith("Server listening on"):
            _set(doc, "listening", "unknown")
            return
        _set(doc, "other", "unknown")


def _session(doc: dict, msg: str) -> bool:
    """A PAM session line (sshd, sudo and su all write them): set its action, say whether it was one."""
    m = _SESSION.search(msg)
    if m:
        _set(doc, f"session_{m.group(1)}", "success", user=m.group(2))
    return m is not None


def _set(doc: dict, action: str, outcome: str, user: str | None = None, addr: str | None = None,
         port: str | None = None) -> None:
    doc["event.action"] = action
    doc["event.outcome"] = outcome
    if user:
        doc["user.name"] = user
    put_address(doc, addr)
    put_port(doc, port)


__all__ = ["SshdParser", "LineError"]
