"""The syslog line header shared by sshd/auth.log, postfix, sendmail, dovecot, haproxy and
syslog-prefixed web-server error lines. Real files mix several headers; all are accepted:

  BSD (RFC 3164)   `Mar  7 18:53:20 host prog[pid]: msg` - no year, no zone: ctx.year / ctx.tz
  ISO 8601         `2015-04-16T18:02:50.321974+00:00 host prog[pid]: msg` (zone-less: ctx.tz)
  RFC 5424         `<38>1 2019-07-08T17:40:16.954167-04:00 host app pid - [sd] msg`
  TAI64N           `@400000004c91b044077a9e94 prog: msg` (daemontools/multilog)

host is optional (some daemons log without it), so is `[pid]`, and `<facility.level>` may
precede the host. The program token may carry a parenthesised context (`auth-worker(304):`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from etl.logs.parsers.base import (MONTHS, UTC, LineError, ParseContext, fixed_zone, fraction_micro, iso_utc,
                                   local_time)

_BSD = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.(\d+))? +")
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)? +")
_RFC5424 = re.compile(r"<\d{1,3}>1 (\S+) (\S+) (\S+) (\S+) \S+ (?:-|(?:\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\])+) ?")
_TAI64N = re.compile(r"@([0-9a-f]{16})([0-9a-f]{8}) +")
_PRI = re.compile(r"<[\w.]+> +")
# program, then an optional PAM-style module before the pid (`sshd(pam_unix)[4242]:`, RHEL/Fedora),
# the pid, an optional context after it (`auth-worker(304):`) and the colon.
_PROG = re.compile(r"(\[?[A-Za-z][\w./@-]*\]?)(?:\(([^)]*)\))?(?:\[(\d+)\])?((?:\([^)]*\))?(?:<[^>]*>)?)(:?)(?: +|$)")
_TAI_EPOCH = 2 ** 62 + 10  # TAI64 label of 1970-01-01 00:00:00 UTC, as daemontools' tai64nlocal reads it


class SyslogHeader(NamedTuple):
    timestamp: str        # ISO UTC
    host: str | None
    program: str | None
    pid: int | None
    message: str          # after `prog[pid]: `
    rest: str             # after the timestamp (program context included), for rules that need it
    module: str | None = None  # the PAM-style module of `prog(module)[pid]:` (pam_unix)


def parse_timestamp(line: str, ctx: ParseContext) -> tuple[str, int] | None:
    """(ISO UTC timestamp, end offset) of a syslog timestamp at the start of `line`, or None."""
    m = _BSD.match(line)
    if m:
        month, day, hms, frac = m.groups()
        moment = local_time(ctx, ctx.need_year(), MONTHS[month], int(day), hms, fraction_micro(frac))
        return iso_utc(moment), m.end()
    m = _ISO.match(line)
    if m:
        year, month, day, hms, frac, zone = m.groups()
        tz = ctx.tz if zone is None else _zone(zone)
        try:
            moment = dt.datetime(int(year), int(month), int(day), int(hms[:2]), int(hms[3:5]), int(hms[6:8]),
                                 fraction_micro(frac), tzinfo=tz)
        except ValueError as exc:
            raise LineError(f"invalid date: {exc}") from None
        return iso_utc(moment), m.end()
    m = _TAI64N.match(line)
    if m:
        seconds = int(m.group(1), 16) - _TAI_EPOCH
        moment = dt.datetime.fromtimestamp(seconds, tz=UTC) + dt.timedelta(microseconds=int(m.group(2), 16) // 1000)
        return iso_utc(moment), m.end()
    return None


def _zone(text: str) -> dt.timezone:
    return UTC if text == "Z" else fixed_zone(text.replace(":", ""))


def parse_header(line: str, ctx: ParseContext) -> SyslogHeader:
    m = _RFC5424.match(line)
    if m:
        stamp, host, app, pid = m.groups()
        ts = parse_timestamp(stamp + " ", ctx)
        if ts is None:
            raise LineError("RFC 5424 header with unreadable timestamp")
        msg = line[m.end():]
        return SyslogHeader(ts[0], None if host == "-" else host, None if app == "-" else app,
                            int(pid) if pid.isdigit() else None, msg, msg)
    ts = parse_timestamp(line, ctx)
    if ts is None:
        raise LineError("no syslog timestamp at line start")
    stamp, pos = ts
    rest = line[pos:]
    m = _PRI.match(rest)
    body = rest[m.end():] if m else rest
    host = None
    first = _PROG.match(body)
    if first is None or not _is_program(first):
        # first token is the host; the program follows (or there is none)
        host, _, after = body.partition(" ")
        after = after.lstrip(" ")
        second = _PROG.match(after)
        if second is not None and _is_program(second):
            return _with_program(stamp, host, second, after, rest)
        return SyslogHeader(stamp, host or None, None, None, after, rest)
    return _with_program(stamp, None, first, body, rest)


def _is_program(m: re.Match) -> bool:
    token, module, pid, context, colon = m.groups()
    return bool(colon or pid or context or module or (token.startswith("[") and token.endswith("]")))


def _with_program(stamp: str, host: str | None, m: re.Match, text: str, rest: str) -> SyslogHeader:
    token, module, pid = m.group(1), m.group(2), m.group(3)
    return SyslogHeader(stamp, host, token.strip("[]"), int(pid) if pid else None, text[m.end():], rest,
                        module or None)


def put_header_fields(doc: dict, h: SyslogHeader) -> dict:
    """host.name, process.name and process.pid of the header, where the line has them."""
    if h.host:
        doc["host.name"] = h.host
    if h.program:
        doc["process.name"] = h.program
    if h.pid is not None:
        doc["process.pid"] = h.pid
    return doc


def header_doc(line: str, ctx: ParseContext) -> tuple[dict, SyslogHeader]:
    """The document a syslog line starts as (@timestamp, then the header fields) and its header."""
    h = parse_header(line, ctx)
    return put_header_fields({"@timestamp": h.timestamp}, h), h
