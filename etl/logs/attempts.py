"""One login attempt, one counted line: older (RHEL/Fedora) sshd logs write each failed attempt
twice, `sshd(pam_unix)[pid]: authentication failure; ... rhost=H user=U` and, from the same
process within a second or two, `sshd[pid]: Failed password for U from H ...` (or `Invalid user`).
Both stay indexed; the PAM line of such a pair gets action `pam_authentication_failure_paired`,
which no rule counts, so the attempt is counted once (by its `Failed ...` line). A PAM failure
with no such partner (a log of PAM lines only) keeps `pam_authentication_failure` and counts.

Pure and streaming: `pair_attempts` passes (flat document, ...) items through in order, except
that a PAM failure is held back until its partner shows up or PAIR_SECONDS of log time pass."""

from __future__ import annotations

import datetime as dt
from collections import deque
from typing import Iterable, Iterator

PAM = "pam_authentication_failure"
PAIRED = "pam_authentication_failure_paired"
# sshd writes both lines of one attempt in the same second or the next; 5 s leaves room for a
# busy host and never reaches the next attempt of the same connection (sshd's delay after a
# failed password is ~2 s, and the next attempt logs its own PAM line first).
PAIR_SECONDS = 5.0
# Held-back PAM lines at most (memory bound for a file of nothing but PAM lines in one second).
MAX_PENDING = 10_000


def _seconds(flat: dict) -> float:
    return dt.datetime.fromisoformat(flat["@timestamp"].replace("Z", "+00:00")).timestamp()


def _key(flat: dict):
    pid = flat.get("process.pid")
    return None if pid is None else (flat.get("host.name") or "", pid)


def _same(a: dict, b: dict, field: str) -> bool:
    """Equal, or unknown on one side (a PAM line of an unknown user has no user=)."""
    x, y = a.get(field), b.get(field)
    return x is None or y is None or x == y


def partners(pam: dict, attempt: dict) -> bool:
    """Same process (host + pid), same user and source where both lines name them (an address
    compared with an address, a host name with a host name: rhost may be a name where sshd
    logged the IP), within PAIR_SECONDS."""
    if _key(pam) is None or _key(pam) != _key(attempt):
        return False
    if not (_same(pam, attempt, "user.name") and _same(pam, attempt, "source.ip")
            and _same(pam, attempt, "source.domain")):
        return False
    return abs(_seconds(pam) - _seconds(attempt)) <= PAIR_SECONDS


class _Held:
    """Lines by process key, oldest first, with a log-time expiry across keys."""

    def __init__(self):
        self.by_key: dict = {}
        self.order: deque = deque()   # (seconds, seq, key); entries of lines taken out are skipped
        self.live: dict = {}          # seq -> (seconds, key, value)
        self.seq = 0

    def add(self, key, seconds: float, value) -> None:
        self.seq += 1
        self.by_key.setdefault(key, []).append(self.seq)
        self.order.append((seconds, self.seq, key))
        self.live[self.seq] = (seconds, key, value)

    def take(self, key, match):
        """The newest held value of `key` that `match` accepts, removed; else None."""
        seqs = self.by_key.get(key)
        for i in range(len(seqs or []) - 1, -1, -1):
            value = self.live[seqs[i]][2]
            if match(value):
                del self.live[seqs.pop(i)]
                if not seqs:
                    del self.by_key[key]
                return value
        return None

    def expire(self, before: float | None) -> Iterator:
        """Values older than `before` (all when None) or beyond MAX_PENDING, oldest first, removed."""
        limit = MAX_PENDING
        while self.order and (before is None or self.order[0][0] < before or len(self.live) > limit):
            _, seq, key = self.order.popleft()
            if seq in self.live:
                value = self.live.pop(seq)[2]
                seqs = self.by_key[key]
                seqs.remove(seq)
                if not seqs:
                    del self.by_key[key]
                yield value


def pair_attempts(items: Iterable[tuple]) -> Iterator[tuple]:
    """Items whose first element is a flat document; marks the PAM line of each pair (see the
    module doc). Each `Failed`/`Invalid user` line pairs with at most one PAM line: the latest
    held-back one of its process, else the next one within PAIR_SECONDS. Memory is bounded by
    PAIR_SECONDS of lines (and MAX_PENDING)."""
    pending = _Held()   # PAM lines waiting for their partner (items)
    recent = _Held()    # unpaired attempt lines, for a PAM line logged after them (flat docs)
    for item in items:
        flat = item[0]
        action = flat.get("event.action") or ""
        if action != PAM and not (action.startswith("failed_") or action == "invalid_user"):
            yield item  # most lines: nothing to pair
            continue
        key = _key(flat)
        if key is None or "@timestamp" not in flat:
            yield item
            continue
        now = _seconds(flat)
        yield from pending.expire(now - PAIR_SECONDS)
        for _ in recent.expire(now - PAIR_SECONDS):
            pass
        if action == PAM:
            if recent.take(key, lambda attempt: partners(flat, attempt)) is not None:
                flat["event.action"] = PAIRED
                yield item
            else:
                pending.add(key, now, item)
                yield from pending.expire(now - PAIR_SECONDS)
            continue
        held = pending.take(key, lambda pam: partners(pam[0], flat))
        if held is not None:
            held[0]["event.action"] = PAIRED
            yield held
        else:
            recent.add(key, now, flat)
            for _ in recent.expire(now - PAIR_SECONDS):
                pass
        yield item
    yield from pending.expire(None)
