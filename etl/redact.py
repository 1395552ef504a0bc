"""Secrets out of free text that monetl keeps (quarantined raw lines, error messages): the
password Dovecot's auth debug logging echoes, `password=`/`token=`-style pairs, HTTP
Authorization headers and user:password in URLs. The replacement is always `***`, so a reader
sees that something was there."""

from __future__ import annotations

import re

# Dovecot's auth debug logging can echo the attempted password (used by the dovecot parser too).
GIVEN_PASSWORD = re.compile(r"\(given password: [^)]*\)")
_PAIR = re.compile(r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*)"
                   r"(?!\*\*\*)(\"[^\"]*\"|'[^']*'|[^\s&;,)]+)")
_AUTH_HEADER = re.compile(r"(?i)\b(authorization:\s*(?:basic|bearer|apikey|token)\s+)\S+")
_USERINFO = re.compile(r"(//[^/\s:@]+:)[^@/\s]+@")


def redact(text: str) -> str:
    """`text` with every recognised secret replaced by ***."""
    if not text:
        return text
    text = GIVEN_PASSWORD.sub("(given password: ***)", text)
    text = _AUTH_HEADER.sub(r"\1***", text)
    text = _USERINFO.sub(r"\1***@", text)
    return _PAIR.sub(r"\1***", text)
