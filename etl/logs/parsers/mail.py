"""Mail servers: `postfix`, `sendmail`, `exim`. What the mail-failure job aggregates:

- delivery results: email.delivery.status sent|deferred|bounced|expired, email.dsn, email.delay_s,
  email.relay, email.to.address/domain, email.reason (action `delivery`);
- SMTP rejects: email.delivery.status rejected, email.dsn (when the server logs one), email.reason,
  email.smtp_code, the client as source.ip (action `reject`).

The sender (email.from.address) is joined within the file: a queue-id line that names the sender
(postfix qmgr `from=<>`, sendmail `from=<>`, exim `<=`) is remembered (bounded, most recent
100,000 queue ids) and added to later lines of the same queue id. A delivery line that precedes
its sender line in the file keeps no sender. Other lines get an action (sasl_auth_failed,
lost_connection, ...) and the client address when the line names one."""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict

from etl.logs.parsers.base import LineError, LineParser, ParseContext, fixed_zone, iso_utc, local_time, put_address, put_port
from etl.logs.mailtext import dsn_meaning, normalise_reason
from etl.logs.parsers.syslog import header_doc

_JOIN_LIMIT = 100_000
_CLIENT = re.compile(r"([\w.-]*)\[(?:IPv6:)?([0-9A-Fa-f:.]+)\](?::(\d+))?")
_FROM = re.compile(r"\bfrom=<([^>]*)>")
_TO = re.compile(r"\bto=<([^>]*)>")


class _SenderJoin:
    def __init__(self):
        self.senders: OrderedDict[str, str] = OrderedDict()

    def remember(self, queue_id: str, sender: str) -> None:
        self.senders[queue_id] = sender
        self.senders.move_to_end(queue_id)
        if len(self.senders) > _JOIN_LIMIT:
            self.senders.popitem(last=False)

    def apply(self, doc: dict) -> None:
        qid = doc.get("email.queue_id")
        if qid and "email.from.address" not in doc:
            sender = self.senders.get(qid)
            if sender:
                doc["email.from.address"] = sender
                if "@" in sender:
                    doc["email.from.domain"] = sender.rsplit("@", 1)[1].lower()


def _to(doc: dict, address: str | None) -> None:
    if address:
        doc["email.to.address"] = address
        if "@" in address:
            doc["email.to.domain"] = address.rsplit("@", 1)[1].lower()


NULL_SENDER = "<>"


def _from(doc: dict, address: str | None) -> None:
    """The sender; the empty envelope sender of bounces and DSNs is stored as `<>`, its own
    class, not merged with lines that name no sender at all."""
    if address is None:
        return
    address = address.strip()
    if address in ("", "<>"):
        doc["email.from.address"] = NULL_SENDER
        return
    doc["email.from.address"] = address
    if "@" in address:
        doc["email.from.domain"] = address.rsplit("@", 1)[1].lower()


def _finish(doc: dict) -> None:
    """Fields derived from what the line gave: the normalised reason and the DSN's meaning."""
    reason = doc.get("email.reason")
    if reason:
        doc["email.reason_normalized"] = normalise_reason(reason)
    meaning = dsn_meaning(doc.get("email.dsn"))
    if meaning:
        doc["email.dsn_meaning"] = meaning


def _client(doc: dict, text: str) -> None:
    m = _CLIENT.search(text)
    if m:
        if m.group(1) and m.group(1) != "unknown":
            doc["source.domain"] = m.group(1)
        put_address(doc, m.group(2))
        put_port(doc, m.group(3))


def _act(doc: dict, action: str, outcome: str) -> None:
    doc["event.action"], doc["event.outcome"] = action, outcome


def _rejected(doc: dict, action: str = "reject") -> None:
    _act(doc, action, "failure")
    doc["email.delivery.status"] = "rejected"


def _delivery(doc: dict, status: str) -> None:
    _act(doc, "delivery", _STATUS_OUTCOME.get(status, "unknown"))
    doc["email.delivery.status"] = status


def _by_needle(doc: dict, msg: str, rules: list[tuple[str, str, str]]) -> None:
    """The action of the first rule whose text the message contains, else `other`."""
    for needle, action, outcome in rules:
        if needle in msg:
            _act(doc, action, outcome)
            return
    _act(doc, "other", "unknown")


_STATUS_OUTCOME = {"sent": "success", "deferred": "failure", "bounced": "failure", "expired": "failure"}


class _MailParser(LineParser):
    """A mail log: the sender join is per file. Postfix and sendmail lines are syslog lines whose
    message starts with the queue id (`_qid`, group 1; postfix writes NOQUEUE for none)."""
    needs_year = True
    _qid: re.Pattern

    def __init__(self, ctx: ParseContext):
        super().__init__(ctx)
        self.join = _SenderJoin()

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        doc, h = header_doc(line, self.ctx)
        msg = h.message
        q = self._qid.match(msg)
        if q:
            if q.group(1) != "NOQUEUE":
                doc["email.queue_id"] = q.group(1)
            msg = msg[q.end():]
        self._classify(doc, msg)
        self.join.apply(doc)
        _finish(doc)
        return doc

    def _classify(self, doc: dict, msg: str) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------- postfix
_PF_QID = re.compile(r"^([0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}|NOQUEUE): ")
_PF_REJECT = re.compile(r"(?:milter-)?reject: (\S+) from (.*?): (\d{3}) (?:(\d\.\d{1,3}\.\d{1,3}) )?(.*?)(?:;\s*(?=(?:from|to|proto|helo)=)|$)")
_PF_DELIVERY = re.compile(r"to=<([^>]*)>,(?: orig_to=<[^>]*>,)? relay=([^,]+),(?: conn_use=\d+,)? delay=([\d.]+),"
                          r"(?: delays=[^,]+,)? dsn=(\d\.\d{1,3}\.\d{1,3}), status=(\w+)(?: \((.*)\))?")
_PF_EXPIRED = re.compile(r"from=<([^>]*)>, status=expired")
_PF_QUEUED = re.compile(r"^from=<([^>]*)>, size=")
_PF_SASL = re.compile(r"SASL (\S+) authentication failed(?::\s*(.*?))?(?:, sasl_username=(\S+))?$")
_PF_RULES = [
    ("lost connection after", "lost_connection", "unknown"),
    ("disconnect from", "disconnect", "unknown"),
    ("connect from", "connect", "unknown"),
    ("improper command pipelining", "improper_pipelining", "failure"),
    ("too many errors after", "too_many_errors", "failure"),
    ("rate limit exceeded", "rate_limit_exceeded", "failure"),
    ("does not resolve to address", "reverse_dns_mismatch", "failure"),
    ("PREGREET", "postscreen_pregreet", "failure"),
    ("HANGUP", "postscreen_hangup", "failure"),
    ("COMMAND TIME LIMIT", "postscreen_command_limit", "failure"),
    ("COMMAND COUNT LIMIT", "postscreen_command_limit", "failure"),
    ("not enough free space in mail queue", "queue_storage_low", "failure"),
    ("removed", "removed", "unknown"),
    ("message-id=", "message_id", "unknown"),
    ("client=", "client", "unknown"),
]


class PostfixParser(_MailParser):
    dataset = "postfix"
    _qid = _PF_QID

    def _classify(self, doc: dict, msg: str) -> None:
        m = _PF_REJECT.search(msg)
        if m:
            command, client, code, dsn, reason = m.groups()
            _rejected(doc)
            doc["email.smtp_code"] = int(code)
            doc["email.smtp_command"] = command
            if dsn:
                doc["email.dsn"] = dsn
            doc["email.reason"] = reason.strip()
            _client(doc, client)
            f = _FROM.search(msg, m.end(5))
            _from(doc, f.group(1) if f else None)
            t = _TO.search(msg, m.end(5))
            _to(doc, t.group(1) if t else None)
            return
        m = _PF_DELIVERY.search(msg)
        if m:
            to, relay, delay, dsn, status, reason = m.groups()
            _delivery(doc, status)
            doc["email.dsn"] = dsn
            doc["email.delay_s"] = float(delay)
            doc["email.relay"] = relay
            if reason:
                doc["email.reason"] = reason
            _to(doc, to)
            return
        m = _PF_EXPIRED.search(msg)
        if m:
            _delivery(doc, "expired")
            _from(doc, m.group(1))
            self._remember(doc)
            return
        m = _PF_QUEUED.search(msg)
        if m:
            _act(doc, "queued", "success")
            _from(doc, m.group(1))
            self._remember(doc)
            return
        m = _PF_SASL.search(msg)
        if m:
            _act(doc, "sasl_auth_failed", "failure")
            doc["email.auth_mechanism"] = m.group(1).upper()
            if m.group(3):
                doc["user.name"] = m.group(3)
            _client(doc, msg)
            return
        _by_needle(doc, msg, _PF_RULES)
        _client(doc, msg)

    def _remember(self, doc: dict) -> None:
        if doc.get("email.queue_id") and doc.get("email.from.address") is not None:
            self.join.remember(doc["email.queue_id"], doc["email.from.address"])


# ---------------------------------------------------------------- sendmail
_SM_QID = re.compile(r"^([0-9A-Za-z]{14}): ")
_SM_REJECT = re.compile(r"ruleset=(check_\w+), arg1=<?([^>,]*)>?,(?: arg2=[^,]*,)? relay=(.*?), "
                        r"reject=(\d{3}) (?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)$")
_SM_UNKNOWN_USER = re.compile(r"^<([^>]+)>\.\.\. (No such user here|User unknown)$")
_SM_FROM = re.compile(r"^from=<([^>]*)>, size=\d+.*?(?:relay=(.*))?$")
_SM_DELIVERY = re.compile(r"^to=<?([^>,]*)>?,.*?\bdelay=([\d+:]+),.*?dsn=(\d\.\d{1,3}\.\d{1,3}), "
                          r"stat=(\w+)(?::? \(?(.*?)\)?)?$")
_SM_RELAY = re.compile(r"\brelay=([^,]+),")
_SM_AUTH = re.compile(r"AUTH failure \(([^)]+)\): (.*?)(?:, user=([^,]+))?, relay=")
_SM_STAT = {"sent": "sent", "deferred": "deferred", "queued": "deferred"}
_SM_RULES = [
    ("possible SMTP attack", "possible_smtp_attack", "failure"),
    ("[rejected]", "expn_vrfy_rejected", "failure"),
    ("pre-greeting traffic", "pregreet", "failure"),
    ("did not issue MAIL/EXPN/VRFY/ETRN", "no_mail_command", "unknown"),
    ("lost input channel", "lost_connection", "unknown"),
]


def _sendmail_delay(text: str) -> float:
    days = 0
    if "+" in text:
        d, text = text.split("+", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(days * 86400 + seconds)


class SendmailParser(_MailParser):
    dataset = "sendmail"
    _qid = _SM_QID  # 14 characters: never NOQUEUE

    def _classify(self, doc: dict, msg: str) -> None:
        m = _SM_REJECT.search(msg)
        if m:
            ruleset, arg1, relay, code, dsn, reason = m.groups()
            _rejected(doc)
            doc["email.smtp_code"] = int(code)
            doc["email.ruleset"] = ruleset
            if dsn:
                doc["email.dsn"] = dsn
            doc["email.reason"] = reason
            if ruleset == "check_rcpt":
                _to(doc, arg1)
            elif ruleset == "check_mail":
                _from(doc, arg1)
            _client(doc, relay)
            return
        m = _SM_UNKNOWN_USER.match(msg)
        if m:
            _rejected(doc)
            doc["email.reason"] = m.group(2)
            _to(doc, m.group(1))
            return
        m = _SM_FROM.match(msg)
        if m:
            _act(doc, "queued", "success")
            _from(doc, m.group(1))
            if m.group(2):
                _client(doc, m.group(2))
            if doc.get("email.queue_id"):
                self.join.remember(doc["email.queue_id"], doc["email.from.address"])
            return
        m = _SM_DELIVERY.match(msg)
        if m:
            to, delay, dsn, stat, reason = m.groups()
            r = _SM_RELAY.search(msg)
            relay = r.group(1) if r else None
            _delivery(doc, _SM_STAT.get(stat.lower(), "bounced"))
            doc["email.dsn"] = dsn
            doc["email.delay_s"] = _sendmail_delay(delay)
            if relay:
                doc["email.relay"] = relay.strip()
            if reason:
                doc["email.reason"] = reason
            _to(doc, to)
            return
        m = _SM_AUTH.search(msg)
        if m:
            _act(doc, "auth_failed", "failure")
            doc["email.auth_mechanism"] = m.group(1).upper()
            if m.group(3):
                doc["user.name"] = m.group(3)
            _client(doc, msg[m.end():])
            return
        _by_needle(doc, msg, _SM_RULES)
        _client(doc, msg)


# ---------------------------------------------------------------- exim
_EXIM_PREFIX = re.compile(r"^(?:(\S+) exim\[\d+\]: )?(\d{4})-(\d\d)-(\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))?(?: ([+-]\d{4}))? "
                          r"(?:(\S+) exim\[\d+\]: )?(?:\[\d+\] )?(?:([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) )?")
_EXIM_CLIENT = re.compile(r"(?<!I=)(?<!\()\[([0-9A-Fa-f:.]+)\](?::(\d+))?")
_EXIM_AUTH = re.compile(r"(\S+) authenticator failed for .*?: 535 .*?(?:\(set_id=([^)]+)\))?$")
_EXIM_RCPT = re.compile(r"F=<?([^>\s]*)>? rejected RCPT <?([^>:\s]+)>?: (.*)$")
_EXIM_SENDER_VERIFY = re.compile(r"sender verify fail for <([^>]*)>: (.*)$")
_EXIM_LOCAL_SCAN = re.compile(r"rejected (?:by local_scan\(\)|after DATA): (.*)$")
_EXIM_SA = re.compile(r"SA: Action: ([^:]+):.*?From <([^>]*)> \(host=\S+ \[([^\]]+)\]\) for (\S+)")
_EXIM_ARRIVAL = re.compile(r"^<= (\S+) ")
_EXIM_DELIVERED = re.compile(r"^(?:=>|->) (\S+)(?: <([^>]+)>)?.*?(?: H=(\S+))?")
_EXIM_DEFER = re.compile(r"^== (\S+)(?: <([^>]+)>)? .*?defer \((-?\d+)\)(?:: (.*))?$")
_EXIM_BOUNCE = re.compile(r"^\*\* (\S+)(?: <([^>]+)>)?(?: [A-Z]=\S+)*: (.*)$")
_EXIM_F = re.compile(r"F=<?([^>\s]+)>?")
_EXIM_RULES = [
    ("SMTP protocol synchronization error", "protocol_sync_error", "failure"),
    ("SMTP protocol error", "protocol_error", "failure"),
    ("dropped: too many", "dropped_too_many_errors", "failure"),
    ("closed by DROP in ACL", "acl_drop", "failure"),
    ("dropped by", "acl_drop", "failure"),
    ("no MAIL in SMTP connection", "no_mail_command", "unknown"),
    ("no host name found", "reverse_dns_failed", "unknown"),
    ("no IP address found", "forward_dns_failed", "unknown"),
    ("Completed", "completed", "success"),
]


class EximParser(_MailParser):
    dataset = "exim"
    needs_year = False

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        m = _EXIM_PREFIX.match(line)
        if m is None:
            raise LineError("no exim timestamp (YYYY-MM-DD HH:MM:SS)")
        host1, year, month, day, hms, frac, zone, host2, msg_id = m.groups()
        if zone:
            tz = fixed_zone(zone)
            try:
                moment = dt.datetime(int(year), int(month), int(day), int(hms[:2]), int(hms[3:5]), int(hms[6:8]), tzinfo=tz)
            except ValueError as exc:
                raise LineError(f"invalid date: {exc}") from None
        else:
            moment = local_time(self.ctx, int(year), int(month), int(day), hms)
        doc: dict = {"@timestamp": iso_utc(moment)}
        if host1 or host2:
            doc["host.name"] = host1 or host2
        if msg_id:
            doc["email.queue_id"] = msg_id
        self._classify(doc, line[m.end():])
        self.join.apply(doc)
        _finish(doc)
        return doc

    def _classify(self, doc: dict, msg: str) -> None:
        def client():
            c = _EXIM_CLIENT.search(msg)
            if c:
                put_address(doc, c.group(1))
                put_port(doc, c.group(2))

        m = _EXIM_AUTH.search(msg)
        if m:
            _act(doc, "auth_failed", "failure")
            doc["email.auth_mechanism"] = m.group(1)
            if m.group(2):
                doc["user.name"] = m.group(2)
            client()
            return
        for rx, action in ((_EXIM_RCPT, "reject"), (_EXIM_SENDER_VERIFY, "sender_verify_failed"),
                           (_EXIM_LOCAL_SCAN, "reject")):
            m = rx.search(msg)
            if m:
                _rejected(doc, action)
                if rx is _EXIM_RCPT:
                    _from(doc, m.group(1))
                    _to(doc, m.group(2))
                elif rx is _EXIM_SENDER_VERIFY:
                    _from(doc, m.group(1))
                else:
                    f = _EXIM_F.search(msg)
                    _from(doc, f.group(1) if f else None)
                doc["email.reason"] = m.groups()[-1]
                client()
                return
        m = _EXIM_SA.search(msg)
        if m:
            tossed = "tossed" in m.group(1) or "reject" in m.group(1)
            doc["event.action"] = "spam_rejected" if tossed else "spam_flagged"
            doc["event.outcome"] = "failure" if tossed else "success"
            if tossed:
                doc["email.delivery.status"] = "rejected"
            doc["email.reason"] = m.group(1)
            _from(doc, m.group(2))
            put_address(doc, m.group(3))
            _to(doc, m.group(4))
            return
        m = _EXIM_ARRIVAL.match(msg)
        if m:
            _act(doc, "queued", "success")
            _from(doc, m.group(1))
            if doc.get("email.queue_id"):
                self.join.remember(doc["email.queue_id"], doc["email.from.address"])
            client()
            return
        for rx, status in ((_EXIM_DEFER, "deferred"), (_EXIM_BOUNCE, "bounced"), (_EXIM_DELIVERED, "sent")):
            m = rx.match(msg)
            if m:
                _delivery(doc, status)
                _to(doc, m.group(2) or m.group(1))
                if status == "sent" and m.group(3):
                    doc["email.relay"] = m.group(3)
                elif status != "sent" and m.groups()[-1]:
                    doc["email.reason"] = m.groups()[-1]
                return
        _by_needle(doc, msg, _EXIM_RULES)
        client()
