"""KCMM column mapping (schemas/kcmm/mapping.json) and the pure rules built on it: stable item ids,
counter -> item metadata, and KCMM's local wall-clock times -> UTC epoch seconds + ns (column-wise)."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import ConfigError
from etl.schema import SCHEMAS_DIR
from etl.sources.base import ItemMeta

MAPPING_FILE = SCHEMAS_DIR / "kcmm" / "mapping.json"


@functools.cache
def _load(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"KCMM mapping {path}: cannot read: {exc}") from None


@dataclass(frozen=True)
class KcmmMapping:
    raw: dict

    @classmethod
    def load(cls, path: Path | str | None = None, timezone: str | None = None) -> "KcmmMapping":
        raw = dict(_load(str(path or MAPPING_FILE)))
        if timezone:
            raw["timezone"] = timezone
        return cls(raw)

    @property
    def timezone(self) -> str:
        return self.raw["timezone"]

    @property
    def db(self) -> dict:
        return self.raw["db"]

    @property
    def csv(self) -> dict:
        return self.raw["csv"]

    @property
    def ok_status(self) -> set[int]:
        return set(self.raw.get("status", {}).get("ok", [0]))

    def counter(self, name: str) -> dict:
        return self.raw["counters"].get(name) or self.raw.get("default_counter", {"value_type": 0})

    def item(self, machine: str, counter: str, display_name: str | None = None, unit: str | None = None,
             attributes: Mapping[str, str | None] | None = None) -> ItemMeta:
        """The item a (machine, counter) pair becomes; attributes are machine/counter columns such as
        branch, desk, category (used for host groups and tags)."""
        spec = self.counter(counter)
        rules = self.raw["item"]
        attrs = {k: v for k, v in (attributes or {}).items() if v not in (None, "")}
        if spec.get("category") and "category" not in attrs:
            attrs["category"] = spec["category"]
        groups = []
        for template in rules.get("host_groups", []):
            try:
                groups.append(template.format(**attrs))
            except KeyError:  # a group naming an attribute this machine lacks is left out
                continue
        # Zabbix order: item tags, then host tags, each sorted (as the Zabbix catalog does).
        item_tags = sorted((t, str(attrs[t])) for t in rules.get("item_tags", []) if t in attrs)
        host_tags = sorted((t, str(attrs[t])) for t in rules.get("host_tags", []) if t in attrs)
        return ItemMeta(itemid=kcmm_itemid(machine, counter), host=machine,
                        key=rules.get("key_template", "kcmm.{counter}").format(counter=counter),
                        value_type=int(spec.get("value_type", 0)), host_name=display_name or None,
                        host_groups=tuple(sorted(set(groups))), item_name=spec.get("name") or counter,
                        units=spec.get("units") or unit or None,
                        tags=tuple(item_tags + host_tags))


def kcmm_itemid(machine: str, counter: str) -> int:
    """Stable id from the names (not KCMM's own numeric ids, which a reinstall renumbers): the same
    in DB and CSV mode and across runs. 63 bits so it fits a signed int64."""
    digest = hashlib.sha1(f"kcmm/{machine}/{counter}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def local_to_utc(local: pa.Array, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Naive local timestamps (Arrow timestamp without tz) -> (epoch seconds, ns). Ambiguous times
    at a DST fall-back take the earlier instant, nonexistent ones the earlier valid instant (no-op
    for Asia/Shanghai, which has no DST)."""
    if len(local) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    local = local.cast(pa.timestamp("ns"))
    aware = pc.assume_timezone(local, timezone=timezone, ambiguous="earliest", nonexistent="earliest")
    epoch_ns = aware.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return epoch_ns // 1_000_000_000, epoch_ns % 1_000_000_000
