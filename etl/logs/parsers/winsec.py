"""`winsec`: Windows Security events as JSON lines ({"EventID", "TimeCreated", "Computer",
"EventData": {...}}, the shape of an .evtx converted with python-evtx/evtx_dump).

4624 logon (success), 4625 logon failed, 4768 Kerberos TGT request (Status 0x0 success, else
failure), 4771 Kerberos pre-authentication failed, 4776 NTLM credential validation, 1102 audit log
cleared; any other id is kept with action `event_<id>`. TargetUserName -> user.name,
TargetDomainName -> user.domain, IpAddress/IpPort -> source.ip/port ('-' and '::1' style kept if
valid), Status/SubStatus/FailureReason -> winlog.event_data.* and a readable event.reason."""

from __future__ import annotations

import datetime as dt
import json

from etl.logs.parsers.base import LineError, LineParser, iso_utc, put_address, put_port

_ACTIONS = {
    4624: ("logged_in", "success"),
    4625: ("logon_failed", "failure"),
    4634: ("logged_off", "success"),
    4648: ("explicit_credentials_logon", "unknown"),
    4768: ("kerberos_tgt_request", None),
    4769: ("kerberos_service_ticket_request", None),
    4771: ("kerberos_preauth_failed", "failure"),
    4776: ("credential_validation", None),
    1102: ("audit_log_cleared", "unknown"),
}
# Windows logon failure codes (NTSTATUS) and Kerberos result codes seen in these events.
_REASONS = {
    "%%2313": "unknown user name or bad password",
    "0xc000006d": "unknown user name or bad password",
    "0xc000006a": "bad password",
    "0xc0000064": "user name does not exist",
    "0xc0000234": "account locked out",
    "0xc0000072": "account disabled",
    "0xc000006f": "logon outside allowed hours",
    "0xc0000071": "password expired",
    "0x6": "kerberos: client not found (unknown user)",
    "0x12": "kerberos: account disabled, expired or locked out",
    "0x17": "kerberos: password expired",
    "0x18": "kerberos: pre-authentication failed (bad password)",
    "0x25": "kerberos: clock skew too great",
}
_KEEP = ("Status", "SubStatus", "FailureReason", "LogonType", "LogonProcessName", "AuthenticationPackageName",
         "WorkstationName", "ServiceName", "TicketEncryptionType", "PreAuthType", "ProcessName")


def _status_key(value: str) -> str:
    value = value.lower()
    if value.startswith("0x") and len(value) > 3 and not value.startswith("0xc"):
        return hex(int(value, 16))
    return value


class WinsecParser(LineParser):
    dataset = "windows.security"

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise LineError(f"not JSON: {exc}") from None
        if not isinstance(event, dict) or "EventID" not in event or "TimeCreated" not in event:
            raise LineError("JSON line without EventID/TimeCreated")
        try:
            event_id = int(event["EventID"])
            moment = dt.datetime.fromisoformat(str(event["TimeCreated"]).replace("Z", "+00:00"))
        except (TypeError, ValueError):
            raise LineError("unreadable EventID or TimeCreated") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.ctx.tz)
        data = event.get("EventData") or {}
        action, outcome = _ACTIONS.get(event_id, (f"event_{event_id}", "unknown"))
        status = str(data.get("Status") or "")
        if outcome is None:
            try:
                outcome = ("success" if int(status, 16) == 0 else "failure") if status else "unknown"
            except ValueError:
                outcome = "unknown"
        doc: dict = {"@timestamp": iso_utc(moment), "event.code": str(event_id), "event.action": action,
                     "event.outcome": outcome}
        if event.get("Computer"):
            doc["host.name"] = event["Computer"]
        if event.get("EventRecordID") is not None:
            doc["winlog.record_id"] = str(event["EventRecordID"])
        if event.get("Provider"):
            doc["winlog.provider_name"] = event["Provider"]
        user = data.get("TargetUserName")
        if user and user != "-":
            doc["user.name"] = user
        if data.get("TargetDomainName") and data["TargetDomainName"] != "-":
            doc["user.domain"] = data["TargetDomainName"]
        ip = data.get("IpAddress")
        if ip and ip != "-":
            put_address(doc, ip[7:] if ip.startswith("::ffff:") else ip)
        put_port(doc, str(data.get("IpPort") or ""))
        for key in _KEEP:
            value = data.get(key)
            if value not in (None, "", "-"):
                doc[f"winlog.event_data.{key}"] = str(value).strip()
        for key in ("FailureReason", "SubStatus", "Status"):
            reason = _REASONS.get(_status_key(str(data.get(key) or "")))
            if reason and outcome == "failure":
                doc["event.reason"] = reason
                break
        return doc
