"""The notifier interface and the message texts. A notification carries finding documents (the
findings-index shape: job, rule, severity, source, target, count, first_seen, last_seen,
fingerprint, message)."""

from __future__ import annotations

from typing import Protocol

from etl.errors import MonetlError


class NotifyError(MonetlError):
    """A notification channel refused or could not be reached; the findings stay un-notified and
    the next run retries them."""


class Notifier(Protocol):
    name: str

    def send(self, findings: list[dict]) -> None:
        """Deliver one message about these findings or raise NotifyError."""


def _line(f: dict) -> str:
    return (f"[{f['severity'].upper()}] {f['job']}/{f['rule']} source={f.get('source') or '-'} "
            f"target={f.get('target') or '-'} count={f.get('count')} "
            f"seen {f.get('first_seen') or '?'} .. {f.get('last_seen') or '?'}")


def subject(findings: list[dict]) -> str:
    worst = max(findings, key=lambda f: ("low", "medium", "high", "critical").index(f["severity"]))
    jobs = ",".join(sorted({f["job"] for f in findings}))
    return f"[monetl] {len(findings)} {worst['severity']} log finding(s): {jobs}"


def text(findings: list[dict]) -> str:
    lines = [subject(findings), ""]
    for f in findings:
        lines.append(_line(f))
        if f.get("message"):
            lines.append(f"    {f['message']}")
        if f.get("evidence_ids"):
            lines.append(f"    evidence: {', '.join(f['evidence_ids'][:3])}")
        lines.append(f"    fingerprint: {f['fingerprint']}")
    return "\n".join(lines) + "\n"


# WeChat Work robot markdown: content at most 4096 bytes.
WECOM_MAX_BYTES = 4096


def markdown(findings: list[dict], max_bytes: int = WECOM_MAX_BYTES) -> str:
    colour = {"critical": "warning", "high": "warning", "medium": "comment", "low": "info"}
    head = f"**{subject(findings)}**\n"
    parts = []
    for f in findings:
        parts.append(f"> <font color=\"{colour[f['severity']]}\">{f['severity'].upper()}</font> "
                     f"`{f['job']}/{f['rule']}` source `{f.get('source') or '-'}` target `{f.get('target') or '-'}` "
                     f"count {f.get('count')}\n> {f.get('message') or ''}\n")
    body = head
    for i, part in enumerate(parts):
        tail = f"> ... and {len(parts) - i} more\n"
        if len((body + part + tail).encode("utf-8")) > max_bytes:
            body += tail
            break
        body += part
    return body
