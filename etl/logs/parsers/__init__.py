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
        raise ConfigError(f"unknown log format {fmt!r}; known: {', '.join(FORMATS)} or auto")
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
    ("sshd", re.compile(r"\b(?:sshd|sudo|CRON|systemd-logind)(?:\[\d+\])?: ")),
    ("nginx", re.compile(r"^(?:\S+ nginx\[\d+\]: )?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: ")),
    ("apache", re.compile(r"^\[\w{3} \w{3} \d\d \d\d:\d\d:\d\d|^\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:[^\]]+\] \"[^\"]*\" \d{3} \S+ \"")),
    ("tomcat", re.compile(r"^\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:[^\]]+\] \"")),
]


def sniff(lines: list[str]) -> str | None:
    sample = [line for line in lines if line.strip()][:50]
    if not sample:
        return None
    for fmt, rx in _SNIFF:
        if fmt == "iis":
            if any(rx.search(line) for line in sample):
                return fmt
            continue
        hits = sum(1 for line in sample if rx.search(line))
        if hits * 2 > len(sample):
            return fmt
    return None


__all__ = ["FORMATS", "LineError", "ParseContext", "make_parser", "parser_class", "sniff"]
