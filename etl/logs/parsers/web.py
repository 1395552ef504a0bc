"""Web servers: `apache`, `nginx` and `tomcat` access logs (NCSA common/combined, extra trailing
fields ignored) plus the error-log lines found next to them (Apache 2.2/2.4 error lines with or
without a syslog prefix; nginx error lines). Access lines carry their own zone; error lines do
not (ctx.tz, and ctx.year if syslog-prefixed).

Access: event.action `request`, outcome success for status < 400 else failure.
Apache/nginx error lines go to dataset apache.error / nginx.error with actions user_not_found,
password_mismatch, authentication_failure, authorization_failure, access_denied, file_not_found,
script_not_found, ssl_handshake_failed, upstream_failed, error (outcome failure for the
security-relevant ones, unknown for `error`)."""

from __future__ import annotations

import datetime as dt
import re

from etl.logs.parsers.base import (MONTHS, LineError, LineParser, ParseContext, fixed_zone, fraction_micro,
                                   iso_utc, local_time, put_address, put_host_port)
from etl.logs.parsers.syslog import parse_header

# The request is taken lazily up to `" status size`: attack payloads put unescaped quotes in it.
_ACCESS = re.compile(
    r'^(\S+) (\S+) (.+?) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2})(?:\.(\d+))? ([+-]\d{4})\] '
    r'"(.*?)" (\d{3}|-) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?(?: .*)?$')
_REQUEST = re.compile(r"^([A-Za-z][A-Za-z_-]*) (\S+)(?: (HTTP/[\d.]+))?$")

_APACHE_ERR = re.compile(
    r"^\[\w{3} (\w{3}) (\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d+))? (\d{4})\] (.*)$")
_APACHE_ERR_BODY = re.compile(
    r"^\[(?:([\w-]*):)?(\w+)\](?: \[pid (\d+)(?::tid \d+)?\])? "
    r"\[(?:client|remote) (\[[^\]]+\](?::\d+)?|[^\]\s]+)\] (?:(AH\d+): )?(.*)$")
_APACHE_RULES = [
    (re.compile(r"user (\S*) not found"), "user_not_found", "failure"),
    (re.compile(r"user `([^']*)' in realm `[^']*' not found"), "user_not_found", "failure"),
    (re.compile(r"user (\S+?): (?:authentication failure|password mismatch)"), "password_mismatch", "failure"),
    (re.compile(r"Authorization of user (\S+) to access .* failed"), "authorization_failure", "failure"),
    (re.compile(r"user (\S+?): authorization failure"), "authorization_failure", "failure"),
    (re.compile(r"client denied by server configuration: (\S+?),?(?: |$)()"), "access_denied", "failure"),
    (re.compile(r"File does not exist: (\S+?),?(?: |$)()"), "file_not_found", "failure"),
    (re.compile(r"script '?(\S+?)'? not found or unable to stat()"), "script_not_found", "failure"),
    (re.compile(r"script not found or unable to stat: (\S+)()"), "script_not_found", "failure"),
    (re.compile(r"client used wrong authentication scheme()"), "authentication_failure", "failure"),
    (re.compile(r"(?:invalid nonce|realm mismatch|unknown algorithm|invalid qop)()"), "authentication_failure", "failure"),
]
_PATH_ACTIONS = {"access_denied", "file_not_found", "script_not_found"}

_NGINX_PREFIX = re.compile(r"^(?:(\S+) nginx(?:\[\d+\])?: )+")
_NGINX_ERR = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}:\d{2}:\d{2}) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)$")
_NGINX_CLIENT = re.compile(r", client: ([^,\s]+)")
_NGINX_REQUEST = re.compile(r', request: "([A-Z]+) (\S+)')
_NGINX_USER = re.compile(r"""user ["']([^"']*)["']""")
_NGINX_RULES = [
    ("was not found in", "user_not_found", "failure"),
    ("password mismatch", "password_mismatch", "failure"),
    ("not authenticated", "authentication_failure", "failure"),
    ("No such file or directory", "file_not_found", "failure"),
    ("is not found", "file_not_found", "failure"),
    ("forbidden by rule", "access_denied", "failure"),
    ("access forbidden", "access_denied", "failure"),
    ("SSL_do_handshake() failed", "ssl_handshake_failed", "failure"),
    ("SSL_read() failed", "ssl_handshake_failed", "failure"),
    ("while connecting to upstream", "upstream_failed", "failure"),
]


def parse_access(line: str, dataset: str) -> dict:
    m = _ACCESS.match(line)
    if m is None:
        raise LineError("not an access-log line (common/combined)")
    (client, _ident, user, day, mon, year, hms, frac, zone, request, status, size, referrer, agent) = m.groups()
    month = MONTHS.get(mon)
    if month is None:
        raise LineError(f"unknown month {mon!r}")
    try:
        moment = dt.datetime(int(year), month, int(day), int(hms[:2]), int(hms[3:5]), int(hms[6:8]),
                             fraction_micro(frac), tzinfo=fixed_zone(zone))
    except ValueError as exc:
        raise LineError(f"invalid date: {exc}") from None
    doc: dict = {"@timestamp": iso_utc(moment), "event.action": "request"}
    if dataset:
        doc["event.dataset"] = dataset
    put_address(doc, client)
    if user != "-":
        doc["user.name"] = user
    r = _REQUEST.match(request)
    if r:
        method, url, version = r.groups()
        doc["http.request.method"] = method.upper()
        doc["url.original"] = url
        path, _, query = url.partition("?")
        doc["url.path"] = path
        if query:
            doc["url.query"] = query
        if version:
            doc["http.version"] = version[5:]
    elif request not in ("", "-"):
        doc["http.request.invalid"] = request
    if status != "-":
        code = int(status)
        doc["http.response.status_code"] = code
        doc["event.outcome"] = "success" if code < 400 else "failure"
    else:
        doc["event.outcome"] = "unknown"
    if size != "-":
        doc["http.response.bytes"] = int(size)
    if referrer and referrer != "-":
        doc["http.request.referrer"] = referrer
    if agent and agent != "-":
        doc["user_agent.original"] = agent
    return doc


def parse_apache_error(line: str, ctx: ParseContext) -> dict:
    m = _APACHE_ERR.match(line)
    if m:
        mon, day, hms, frac, year, body = m.groups()
        if mon not in MONTHS:
            raise LineError(f"unknown month {mon!r}")
        doc = {"@timestamp": iso_utc(local_time(ctx, int(year), MONTHS[mon], int(day), hms, fraction_micro(frac)))}
    else:
        h = parse_header(line, ctx)
        doc = {"@timestamp": h.timestamp}
        if h.host:
            doc["host.name"] = h.host
        if h.program:
            doc["process.name"] = h.program
        body = h.message
    b = _APACHE_ERR_BODY.match(body)
    if b is None:
        raise LineError("apache error line without [level] [client ...] fields")
    module, level, pid, client, code, msg = b.groups()
    doc["event.dataset"] = "apache.error"
    doc["log.level"] = level
    if module:
        doc["apache.error.module"] = module
    if pid:
        doc["process.pid"] = int(pid)
    if code:
        doc["error.code"] = code
    put_host_port(doc, client)
    doc["error.message"] = msg
    for rule, action, outcome in _APACHE_RULES:
        r = rule.search(msg)
        if r:
            doc["event.action"], doc["event.outcome"] = action, outcome
            value = r.group(1) if r.groups() else None
            if action in _PATH_ACTIONS:
                if value:
                    doc["url.path"] = value
            elif value:
                doc["user.name"] = value
            break
    else:
        doc["event.action"], doc["event.outcome"] = "error", "unknown"
    return doc


def parse_nginx_error(line: str, ctx: ParseContext) -> dict | None:
    doc: dict = {}
    p = _NGINX_PREFIX.match(line)
    if p:
        doc["host.name"] = p.group(1)
        line = line[p.end():]
    m = _NGINX_ERR.match(line)
    if m is None:
        return None
    year, month, day, hms, level, pid, _tid, cid, msg = m.groups()
    doc["@timestamp"] = iso_utc(local_time(ctx, int(year), int(month), int(day), hms))
    doc["event.dataset"] = "nginx.error"
    doc["log.level"] = level
    doc["process.pid"] = int(pid)
    if cid:
        doc["nginx.connection_id"] = int(cid)
    c = _NGINX_CLIENT.search(msg)
    if c:
        put_address(doc, c.group(1))
    r = _NGINX_REQUEST.search(msg)
    if r:
        doc["http.request.method"] = r.group(1)
        doc["url.original"] = r.group(2)
        doc["url.path"] = r.group(2).partition("?")[0]
    u = _NGINX_USER.search(msg)
    if u:
        doc["user.name"] = u.group(1)
    # Classify on nginx's own text only: what follows ", client:" is request data an attacker controls.
    own = doc["error.message"] = msg.split(", client: ", 1)[0]
    for needle, action, outcome in _NGINX_RULES:
        if needle in own:
            doc["event.action"], doc["event.outcome"] = action, outcome
            break
    else:
        doc["event.action"], doc["event.outcome"] = "error", "unknown"
    return doc


class ApacheParser(LineParser):
    dataset = "apache.access"

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        if line.startswith("[") or _APACHE_SYSLOG.match(line):
            return parse_apache_error(line, self.ctx)
        return parse_access(line, "")


# An Apache error line written through syslog: `Feb 15 16:23:00 srv httpd[22034]: [authz_core:error] ...`
_APACHE_SYSLOG = re.compile(r"^\w{3} +\d{1,2} \d\d:\d\d:\d\d \S+ [\w/.-]+(?:\[\d+\])?: \[")


class NginxParser(LineParser):
    dataset = "nginx.access"

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        doc = parse_nginx_error(line, self.ctx)
        if doc is not None:
            return doc
        return parse_access(line, "")


class TomcatParser(LineParser):
    dataset = "tomcat.access"

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        return parse_access(line, "")
