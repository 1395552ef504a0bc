"""Log parsers, one module per format family. `make_parser(fmt, ctx)` gives a fresh (per file)
parser; `sniff(lines)` picks a format from a file's first lines for `--format auto`."""

from __future__ import annotations

import importlib
import re

from etl.errors import ConfigError
from etl.logs.parsers.base import LineError, ParseContext

FORMATS = {
    "sshd": "etl.logs.parsers.sshd:SshdParser",
    "apache": "etl.logs.parsers.web:ApacheParser",
    "nginx": "etl.logs.parsers.web:NginxParser",
    "tomcat": "etl.logs.parsers.web:TomcatParser",
    "iis": "etl.logs.parsers.iis:IisParser",
    "haproxy": "etl.logs.parsers.haproxy:HaproxyParser",
    "postfix": "etl.logs.parsers.mail:PostfixParser",
    "sendmail": "etl.logs.parsers.mail:SendmailParser",
    "exim": "etl.logs.parsers.mail:EximParser",
    "dovecot": "etl.logs.parsers.dovecot:DovecotParser",
    "winsec": "etl.logs.parsers.winsec:WinsecParser",
    "trade": "etl.logs.parsers.trade:TradeParser",
}


def parser_class(fmt: str):
    if fmt not in FORMATS:
        from etl.logs.parsers.custom import custom_format_names, custom_parser_class

        cls = custom_parser_class(fmt)
        if cls is not None:
            return cls
        known = ", ".join([*FORMATS, *custom_format_names()])
        raise ConfigError(f"unknown log format {fmt!r}; known: {known} or auto")
    module, name = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(module), name)


def make_parser(fmt: str, ctx: ParseContext):
    return parser_class(fmt)(ctx)


# First matching rule wins; each looks at up to 50 non-comment lines and needs a majority.
_SNIFF = [
    ("trade", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} [+-]\d{4} \S+ REQ type=")),
    ("winsec", re.compile(r'^\{.*"EventID"')),
    ("iis", re.compile(r"^#(?:Software: Microsoft Internet Information Services|Fields: date time)")),
    ("haproxy", re.compile(r"haproxy\[\d+\]: ")),
    ("postfix", re.compile(r"postfix[\w/-]*\[\d+\]: ")),
    ("sendmail", re.compile(r"(?:sm-mta|sendmail|sm-acceptingconnections)\[\d+\]: ")),
    ("dovecot", re.compile(r"dovecot|(?:imap|pop3)-login: |auth-worker\(")),
    ("exim", re.compile(r"^(?:\S+ exim\[\d+\]: )?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")),
    ("sshd", re.compile(r"\b(?:sshd|sudo|su|CRON|crond|systemd-logind|login|ftpd|vsftpd|proftpd|klogind|krshd)"
                        r"(?:\([\w-]+\))?(?:\[\d+\])?: ")),
    ("nginx", re.compile(r"^(?:\S+ nginx\[\d+\]: )?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: ")),
    ("apache", re.compile(r"^\[\w{3} \w{3} \d\d \d\d:\d\d:\d\d|^\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:[^\]]+\] \"[^\"]*\" \d{3} \S+ \"")),
    ("tomcat", re.compile(r"^\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:[^\]]+\] \"")),
]


# A file of BSD syslog lines that no rule claims (RHEL /var/log/messages, secure) is read as `sshd`:
# that parser takes every syslog line and names the auth programs it knows.
_SYSLOG = re.compile(r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \S+ [\w./-]+(?:\([^)]*\))?(?:\[\d+\])?: ")


def sniff(lines: list[str]) -> str | None:
    sample = [line for line in lines if line.strip()][:50]
    if not sample:
        return None
    from etl.logs.parsers.custom import sniff_custom

    custom = sniff_custom(sample)
    if custom:
        return custom
    for fmt, rx in _SNIFF:
        if fmt == "iis":
            if any(rx.search(line) for line in sample):
                return fmt
            continue
        hits = sum(1 for line in sample if rx.search(line))
        if hits * 2 > len(sample):
            return fmt
    if sum(1 for line in sample if _SYSLOG.match(line)) * 2 > len(sample):
        return "sshd"
    return None


__all__ = ["FORMATS", "LineError", "ParseContext", "make_parser", "parser_class", "sniff"]
