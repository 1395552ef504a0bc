"""Which findings each channel has already been told about, so one fingerprint is sent once per
channel. The findings index is the log (fields notified_channels, notified_at), which every
Airflow worker shares; a JSON-lines file under settings.home serves runs without Elasticsearch."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from etl.errors import StoreError
from etl.window import UTC


class FileSentLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _sent(self) -> set[tuple[str, str]]:
        if not self.path.exists():
            return set()
        out = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                out.add((entry["channel"], entry["fingerprint"]))
        return out

    def unsent(self, channel: str, findings: list[dict]) -> list[dict]:
        sent = self._sent()
        return [f for f in findings if (channel, f["fingerprint"]) not in sent]

    def mark(self, channel: str, fingerprints: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(tz=UTC).isoformat()
        with open(self.path, "a", encoding="utf-8") as fh:
            for fp in fingerprints:
                fh.write(json.dumps({"channel": channel, "fingerprint": fp, "sent_at": now}) + "\n")


class EsSentLog:
    def __init__(self, es, index: str):
        self.es = es
        self.index = index

    def unsent(self, channel: str, findings: list[dict]) -> list[dict]:
        if not findings:
            return []
        docs = self.es.mget(index=self.index, ids=[f["fingerprint"] for f in findings],
                            source_includes=["notified_channels"])["docs"]
        sent = {d["_id"] for d in docs if d.get("found") and channel in (d["_source"].get("notified_channels") or [])}
        return [f for f in findings if f["fingerprint"] not in sent]

    def mark(self, channel: str, fingerprints: list[str]) -> None:
        """Partial-document updates (the minimal Elasticsearch distribution has no scripting)."""
        if not fingerprints:
            return
        now = dt.datetime.now(tz=UTC).isoformat()
        docs = self.es.mget(index=self.index, ids=fingerprints,
                            source_includes=["notified_channels", "notified_at"])["docs"]
        operations = []
        for d in docs:
            if not d.get("found"):
                continue  # a finding never stored cannot be marked; it was sent from a run's result
            current = d["_source"]
            channels = list(current.get("notified_channels") or [])
            if channel not in channels:
                channels.append(channel)
            operations.append({"update": {"_index": self.index, "_id": d["_id"], "retry_on_conflict": 3}})
            operations.append({"doc": {"notified_channels": channels,
                                       "notified_at": current.get("notified_at") or now}})
        if not operations:
            return
        result = self.es.bulk(operations=operations, refresh="wait_for")
        if result.get("errors"):
            bad = [i["update"] for i in result["items"] if i["update"].get("error")]
            raise StoreError(f"{len(bad)} findings sent on {channel} but not marked as sent in {self.index} "
                             f"(first {bad[0]['_id']}: {bad[0]['error'].get('reason')}); they may be sent again")
