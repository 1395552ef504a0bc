"""Exponential backoff with jitter, shared by every client that retries a remote call
(Elasticsearch in etl/search/retry.py, the Zabbix API in etl/sources/zabbix_api.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Attempt n waits a random time in [d/2, d], d = base * 2**n capped at `cap`, so many
    writers that failed together do not come back together."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng=random) -> float:
        d = min(self.cap, self.base * (2 ** attempt))
        return d / 2 + rng.uniform(0, d / 2)
