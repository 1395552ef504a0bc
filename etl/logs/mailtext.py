"""Pure text helpers of the mail logs: the meaning of an enhanced status code (DSN, table in
schemas/logs/dsn_codes.json) and a failure reason with its per-message details taken out, so
that every `Client host [IP] blocked using zen.spamhaus.org` is one reason, not one per IP."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from etl.errors import ConfigError

DSN_FILE = Path(__file__).resolve().parents[2] / "schemas" / "logs" / "dsn_codes.json"


@functools.lru_cache(maxsize=1)
def _dsn_table() -> dict:
    try:
        return json.loads(DSN_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read DSN code table {DSN_FILE}: {exc}") from exc


@functools.lru_cache(maxsize=1024)
def dsn_meaning(code: str | None) -> str | None:
    """'5.1.1' -> 'permanent failure: bad destination mailbox address (user unknown)'."""
    if not code or code.count(".") != 2:
        return None
    table = _dsn_table()
    cls, detail = code.split(".", 1)
    kind = table["classes"].get(cls)
    if kind is None:
        return None
    meaning = table["details"].get(detail)
    return f"{kind}: {meaning}" if meaning else kind


_ADDRESS = re.compile(r"<[^<>\s@]*@[^<>\s]*>")
_ANGLE = re.compile(r"<[^<>\s]+>")
_URL_TAIL = re.compile(r"(https?://[^\s/]+)/\S*")
_IPV6 = re.compile(r"\[(?:IPv6:)?[0-9A-Fa-f]*:[0-9A-Fa-f:.]+\]")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_BIG_NUMBER = re.compile(r"(?<![\w.])\d{5,}(?![\w.])")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=65536)
def normalise_reason(reason: str | None) -> str | None:
    """The reason with addresses, IPs, host names in angle brackets, URL paths and long numbers
    replaced by placeholders: `Service unavailable; Client host [192.0.2.9] blocked using
    zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.9` ->
    `Service unavailable; Client host [<ip>] blocked using zen.spamhaus.org; https://www.spamhaus.org/...`."""
    if not reason:
        return reason
    text = _ADDRESS.sub("<address>", reason)
    text = _URL_TAIL.sub(r"\1/...", text)
    text = _IPV6.sub("[<ip>]", text)
    text = _IPV4.sub("<ip>", text)
    text = _ANGLE.sub(lambda m: m.group(0) if m.group(0) in ("<address>", "<ip>") else "<host>", text)
    text = _BIG_NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()[:1024]
