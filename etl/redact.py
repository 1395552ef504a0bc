"""Secrets out of free text that monetl keeps (stored log messages, quarantined raw lines, error
messages): `password=`/`token=`-style pairs (URL queries, form dumps, JDBC strings), user:password
in URLs, HTTP Basic/Bearer credentials and the password Dovecot's auth debug logging echoes. The
replacement is always `***`, so a reader sees that something was there. One module for the log
parsers and the quarantine alike, so what a parser would have stored redacted never reaches a
quarantine file in clear."""

from __future__ import annotations

import re

MARK = "***"
# Dovecot's auth debug logging can echo the attempted password (used by the dovecot parser too).
GIVEN_PASSWORD = re.compile(r"\(given password: [^)]*\)")
# `pwd` is not a secret word: sudo lines carry `PWD=/home/bob` (a working directory).
_PAIR = re.compile(r"(?i)\b((?:password|passwd|passphrase|pass|secret|token|api_?key|access_?key|access_token)"
                   r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|(?!\*\*\*)[^\s&;,\"')]+)")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)(@)", re.I)
_AUTH_HEADER = re.compile(r"(?i)\b(authorization:\s*(?:basic|bearer|apikey|token)\s+)(\S+)")


def redact(text: str) -> str:
    """`text` with every recognised secret replaced by ***; unchanged (the same object) when there
    is none, which is nearly every line, so the common case costs a few substring tests (a
    case-insensitive regular-expression search per line cost more than a trade line's parse)."""
    if not text:
        return text
    low = text.lower()
    if ("pass" not in low and "secret" not in low and "token" not in low and "key" not in low
            and "authoriz" not in low and "://" not in low):
        return text
    out = GIVEN_PASSWORD.sub(f"(given password: {MARK})", text)
    out = _AUTH_HEADER.sub(lambda m: m.group(1) + MARK, out)
    out = _USERINFO.sub(lambda m: m.group(1) + MARK + m.group(3), out)
    return _PAIR.sub(lambda m: m.group(1) + MARK, out)
