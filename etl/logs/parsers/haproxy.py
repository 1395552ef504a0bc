"""`haproxy`: HAProxy through syslog. HTTP log lines (option httplog) carry the accept date with
milliseconds (local time: ctx.tz) and the timers Tq/Tw/Tc/Tr/Tt in ms; event.duration = Tt (total
session time) in ns, the others under haproxy.timers.*. A timer of -1 means the phase never ended
(e.g. connection aborted): stored as -1, the outcome is failure. Other lines (proxy start,
connection errors such as SSL handshake failures) keep the syslog timestamp (ctx.year needed)."""

from __future__ import annotations

import re

from etl.logs.parsers.base import MONTHS, LineError, LineParser, iso_utc, local_time, put_host_port
from etl.logs.parsers.syslog import parse_header, put_header_fields

_HTTP = re.compile(
    r"^(\S+) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2})\.(\d{3})\] (\S+) ([^/\s]+)/(\S+) "
    r"(-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (-?\d+) \+?(\d+) \S+ \S+ (\S{4}) "
    r"(\d+)/(\d+)/(\d+)/(\d+)/\+?(\d+) (\d+)/(\d+)(?: \{([^}]*)\})?(?: \{([^}]*)\})? \"(.*?)\"?$")
_CONN_ERR = re.compile(r"^(\S+) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2})\.(\d{3})\] ([^/\s]+)/(\S+): (.*)$")
_REQUEST = re.compile(r"^([A-Z]+) (\S+)(?: HTTP/([\d.]+))?")
_PROXY = re.compile(r"^Proxy (\S+) (started|stopped)")


class HaproxyParser(LineParser):
    dataset = "haproxy"
    needs_year = True

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        h = parse_header(line, self.ctx)
        # @timestamp comes later: the HTTP and connection-error lines carry their own accept date
        doc = put_header_fields({}, h)
        m = _HTTP.match(h.message)
        if m:
            return self._http(doc, m)
        m = _CONN_ERR.match(h.message)
        if m:
            client, day, mon, year, hms, ms, frontend, bind, msg = m.groups()
            doc["@timestamp"] = self._accept(day, mon, year, hms, ms)
            put_host_port(doc, client)
            doc["haproxy.frontend_name"] = frontend
            doc["haproxy.bind_name"] = bind
            doc["error.message"] = msg
            doc["event.action"], doc["event.outcome"] = "connection_error", "failure"
            return doc
        doc["@timestamp"] = h.timestamp
        p = _PROXY.match(h.message)
        doc["event.action"] = f"proxy_{p.group(2)}" if p else "other"
        doc["event.outcome"] = "unknown"
        return doc

    def _accept(self, day: str, mon: str, year: str, hms: str, ms: str) -> str:
        if mon not in MONTHS:
            raise LineError(f"unknown month {mon!r}")
        return iso_utc(local_time(self.ctx, int(year), MONTHS[mon], int(day), hms, int(ms) * 1000))

    def _http(self, doc: dict, m: re.Match) -> dict:
        (client, day, mon, year, hms, ms, frontend, backend, server, tq, tw, tc, tr, tt, status, size,
         term, actconn, feconn, beconn, srvconn, retries, srvq, bkq, reqh, resh, request) = m.groups()
        doc["@timestamp"] = self._accept(day, mon, year, hms, ms)
        put_host_port(doc, client)
        doc["event.action"] = "request"
        doc["haproxy.frontend_name"] = frontend.rstrip("~")
        doc["haproxy.backend_name"] = backend
        doc["haproxy.server_name"] = server
        timers = {"tq": int(tq), "tw": int(tw), "tc": int(tc), "tr": int(tr), "tt": int(tt)}
        for key, value in timers.items():
            doc[f"haproxy.timers.{key}"] = value
        doc["event.duration"] = timers["tt"] * 1_000_000
        doc["haproxy.termination_state"] = term
        code = int(status)
        if code >= 0:
            doc["http.response.status_code"] = code
        doc["http.response.bytes"] = int(size)
        aborted = any(v < 0 for v in timers.values())
        doc["event.outcome"] = "failure" if aborted or code < 0 or code >= 400 else "success"
        if reqh:
            doc["haproxy.captured_request_headers"] = reqh
        if resh:
            doc["haproxy.captured_response_headers"] = resh
        r = _REQUEST.match(request)
        if r:
            doc["http.request.method"] = r.group(1)
            doc["url.original"] = r.group(2)
            path, _, query = r.group(2).partition("?")
            doc["url.path"] = path
            if query:
                doc["url.query"] = query
            if r.group(3):
                doc["http.version"] = r.group(3)
        return doc
