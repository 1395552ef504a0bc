"""`trade`: the trading-gateway request log (format: schemas/logs/trade_gateway.md). One line per
completed request; '#' lines are comments (the generator's synthetic-data banner), skipped."""

from __future__ import annotations

import datetime as dt
import re

from etl.logs.parsers.base import LineError, LineParser, fixed_zone, iso_utc

_LINE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) ([+-]\d{4}) (\S+) REQ "
    r"type=(NEW_ORDER|CANCEL|QUERY|QUOTE) order_id=(\S+) branch=(\S+) channel=(APP|PC|API|COUNTER) "
    r"account=(\S+) latency_us=(\d+) result=(OK|REJECT|TIMEOUT) code=(\d+)$")
_OUTCOME = {"OK": "success", "REJECT": "failure", "TIMEOUT": "failure"}


class TradeParser(LineParser):
    dataset = "trade.gateway"

    def parse(self, line: str) -> dict | None:
        if not line or line.startswith("#"):
            return None
        m = _LINE.match(line)
        if m is None:
            raise LineError("not a trade-gateway request line")
        (y, mo, d, hh, mi, ss, us, zone, gateway, kind, order_id, branch, channel, account, latency, result,
         code) = m.groups()
        try:
            moment = dt.datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), int(us), tzinfo=fixed_zone(zone))
        except ValueError as exc:
            raise LineError(f"invalid date: {exc}") from None
        return {
            "@timestamp": iso_utc(moment),
            "host.name": gateway,
            "event.action": kind.lower(),
            "event.outcome": _OUTCOME[result],
            "event.duration": int(latency) * 1000,
            "trade.type": kind,
            "trade.order_id": order_id,
            "trade.branch": branch,
            "trade.channel": channel,
            "trade.account": account,
            "trade.result": result,
            "trade.code": int(code),
            "trade.gateway": gateway,
        }
