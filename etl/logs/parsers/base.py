"""What every log parser shares: the per-file context (year and zone for lines that carry none),
the error a line is quarantined with, timestamp and address helpers.

A parser turns one decoded line into a flat dict of ECS field names (dotted keys), returns None
for a line that is skipped by design (comments, headers), or raises LineError with the reason.
The loader adds the fields every document has (event.dataset, log.*, message, host.name)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

from etl.errors import ConfigError

UTC = dt.timezone.utc
# Real business logs in this system start well after 2000; an earlier stamp is a clock that was
# never set (e.g. Tomcat's 01/Jan/1970 for a request it could not parse), not an event time.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=UTC)
MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


class LineError(Exception):
    """This line cannot become a document; the reason goes to the quarantine."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParseContext:
    """Per file: what the lines themselves do not say."""
    file_name: str = ""
    year: int | None = None
    tz: dt.tzinfo = UTC
    host: str | None = None
    tz_name: str = "UTC"
    state: dict = field(default_factory=dict)

    @classmethod
    def build(cls, file_name: str = "", year: int | None = None, tz: str | None = None,
              host: str | None = None) -> "ParseContext":
        tz_name = tz or "UTC"
        try:
            zone = UTC if tz_name.upper() == "UTC" else ZoneInfo(tz_name)
        except Exception as exc:
            raise ConfigError(f"unknown time zone {tz_name!r} (use an IANA name such as Asia/Shanghai)") from exc
        return cls(file_name=file_name, year=year, tz=zone, host=host, tz_name=tz_name)

    def need_year(self) -> int:
        if self.year is None:
            raise ConfigError(
                f"{self.file_name or 'input'}: syslog-style lines carry no year; give --year or "
                "MONETL_LOG_YEAR (monetl never guesses the year from the current date)")
        return self.year


class LineParser:
    """What every parser class shares: made per file (make_parser) with that file's context.
    A subclass names its dataset, says whether its lines need ctx.year, and defines parse(line)."""
    dataset = ""
    needs_year = False

    def __init__(self, ctx: ParseContext):
        self.ctx = ctx


_ZONES: dict[str, dt.timezone] = {}


def fixed_zone(text: str) -> dt.timezone:
    """The zone of a `+hhmm` / `-hhmm` offset, cached: the few offsets of a file repeat on every
    line. An offset of 24 h or more is a LineError, so the quarantine says what is wrong."""
    zone = _ZONES.get(text)
    if zone is None:
        sign = -1 if text[0] == "-" else 1
        try:
            zone = dt.timezone(sign * dt.timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))
        except ValueError:
            raise LineError(f"impossible time-zone offset {text!r}") from None
        _ZONES[text] = zone
    return zone


def iso_utc(moment: dt.datetime) -> str:
    """@timestamp text: UTC, microseconds, 'Z'. Refuses stamps before 2000 (see EARLIEST)."""
    if moment.tzinfo is None:
        raise LineError("timestamp without zone")
    moment = moment.astimezone(UTC)
    if moment < EARLIEST:
        raise LineError(f"timestamp before 2000: {moment.isoformat()}")
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z")


def local_time(ctx: ParseContext, year: int, month: int, day: int, hms: str, micro: int = 0) -> dt.datetime:
    try:
        return dt.datetime(year, month, day, int(hms[0:2]), int(hms[3:5]), int(hms[6:8]), micro, tzinfo=ctx.tz)
    except ValueError as exc:
        raise LineError(f"invalid date: {exc}") from None


def fraction_micro(frac: str | None) -> int:
    if not frac:
        return 0
    return int((frac + "000000")[:6])


@lru_cache(maxsize=65536)
def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def put_address(doc: dict, value: str | None, prefix: str = "source") -> None:
    """source.ip when the text is an IP address (mapped as `ip` in Elasticsearch), else
    source.domain: logs put host names and even garbage where an address belongs."""
    if not value or value in ("-", "unknown"):
        return
    value = value.strip("[]")
    if value.lower().startswith("ipv6:"):
        value = value[5:]
    ip = _ip(value)
    if ip is None and "%" in value:  # scoped IPv6 (fe80::1%eth0)
        ip = _ip(value.split("%", 1)[0])
    if ip is not None:
        doc[f"{prefix}.ip"] = ip
    else:
        doc[f"{prefix}.domain"] = value


def put_port(doc: dict, value: str | None, prefix: str = "source") -> None:
    if value and value.isdigit():
        port = int(value)
        if 0 <= port <= 65535:
            doc[f"{prefix}.port"] = port


def put_host_port(doc: dict, text: str, prefix: str = "source") -> None:
    """source.ip/domain and source.port of an `address[:port]` text (see split_host_port)."""
    addr, port = split_host_port(text)
    put_address(doc, addr, prefix)
    put_port(doc, port, prefix)


def split_host_port(text: str) -> tuple[str, str | None]:
    """'1.2.3.4:80', '[2001:db8::1]:80', '2001:db8::1' or '1.2.3.4' -> (address, port or None)."""
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        return addr, rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        addr, _, port = text.partition(":")
        return addr, port
    return text, None

