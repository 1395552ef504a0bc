"""Extract definitions: schemas/extracts/<name>.json, loaded and checked here (the files are the
contract; this module only reads them). A mistake in a file is reported with the file and the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from etl.errors import ConfigError
from etl.schema import SCHEMAS_DIR

DEFINITIONS_DIR = SCHEMAS_DIR / "extracts"

DATASETS = ("raw", "5m", "1h", "findings")
GRAINS = ("hour", "day", "week", "month")
# Conformed dimensions: each one is a key column in the fact and (except metric) a dim table.
DIMENSIONS = ("host", "item", "host_group", "metric")
# Column types a definition may use, as DuckDB casts and Hyper DDL types.
TYPES = {
    "text": ("VARCHAR", "TEXT"),
    "bigint": ("BIGINT", "BIGINT"),
    "int": ("INTEGER", "INTEGER"),
    "double": ("DOUBLE", "DOUBLE PRECISION"),
    "date": ("DATE", "DATE"),
    "timestamptz": ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
    "timestamp": ("TIMESTAMP", "TIMESTAMP"),
    "bool": ("BOOLEAN", "BOOL"),
    # Exact unsigned aggregates (rollup min_uint/max_uint/last_uint, sum_uint): Hyper has no uint64.
    # Hyper stores precision above 18 as a 128-bit numeric, which needs database file version 3
    # (see hyper_store.WIDE_NUMERIC_TYPES): an extract using these is created at that version.
    "uint": ("DECIMAL(20,0)", "NUMERIC(20,0)"),
    "decimal38": ("DECIMAL(38,0)", "NUMERIC(38,0)"),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DefinitionError(ConfigError):
    """An extract definition file is malformed: the message names the file and the field."""

    def __init__(self, path: Path | str, where: str, reason: str):
        super().__init__(f"{path}: {where}: {reason}")
        self.path = str(path)
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    sql: str
    doc: str = ""

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type][0]

    @property
    def hyper_type(self) -> str:
        return TYPES[self.type][1]


@dataclass(frozen=True)
class ItemRule:
    metric: str
    keys: tuple[str, ...]
    check: bool = False   # a 0/1 reachability check (icmpping, agent.ping): measures see it as is_check


@dataclass(frozen=True)
class Fact:
    table: str
    grain: str
    dataset: str
    dimensions: tuple[str, ...]
    attributes: tuple[Column, ...]
    measures: tuple[Column, ...]


@dataclass(frozen=True)
class Definition:
    name: str
    version: int
    doc: str
    dataset: str
    path: Path
    sources: tuple[str, ...] = ()
    items: tuple[ItemRule, ...] = ()
    jobs: tuple[str, ...] = ()
    time_column: str = ""
    input: tuple[Column, ...] = ()
    series_lookback_days: int = 0
    where: str = ""
    measures: tuple[Column, ...] = ()
    facts: tuple[Fact, ...] = field(default_factory=tuple)

    @property
    def is_points(self) -> bool:
        return self.dataset != "findings"

    @property
    def file_name(self) -> str:
        return f"{self.name}.hyper"


class _Reader:
    """Typed access to one JSON object, raising DefinitionError with a field path on any mismatch."""

    def __init__(self, path: Path, data, where: str = ""):
        self.path, self.data, self.where = path, data, where
        if not isinstance(data, dict):
            self.fail("", f"must be an object, got {type(data).__name__}")

    def fail(self, key: str, reason: str):
        where = ".".join(p for p in (self.where, key) if p) or "(top level)"
        raise DefinitionError(self.path, where, reason)

    def get(self, key: str, kind: type, default=...):
        if key not in self.data:
            if default is ...:
                self.fail(key, "is required")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(key, f"must be {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.get(key, str)
        if not _NAME.match(value):
            self.fail(key, f"{value!r} is not a lower-case identifier (a-z, 0-9, _)")
        return value

    def choice(self, key: str, options, default=...) -> str:
        value = self.get(key, str, default)
        if value not in options:
            self.fail(key, f"{value!r} is not one of {', '.join(options)}")
        return value

    def objects(self, key: str, default=...) -> list["_Reader"]:
        values = self.get(key, list, default)
        return [_Reader(self.path, v, f"{self.where + '.' if self.where else ''}{key}[{i}]")
                for i, v in enumerate(values)]

    def strings(self, key: str, default=...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                self.fail(f"{key}[{i}]", f"must be a non-empty string, got {v!r}")
        return tuple(values)

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            self.fail(extra[0], f"unknown field (known: {', '.join(sorted(allowed))})")


def _column(r: _Reader, sql_required: bool = True) -> Column:
    r.unknown({"name", "type", "sql", "doc"})
    name = r.name("name")
    return Column(name=name, type=r.choice("type", tuple(TYPES)),
                  sql=r.get("sql", str) if sql_required else r.get("sql", str, name),
                  doc=r.get("doc", str, ""))


def parse(path: Path, data) -> Definition:
    top = _Reader(path, data)
    top.unknown({"name", "version", "doc", "dataset", "sources", "items", "jobs", "time_column", "input", "where",
                 "series_lookback_days", "measures", "facts"})
    name = top.name("name")
    if name != path.stem:
        top.fail("name", f"{name!r} differs from the file name {path.stem!r}")
    dataset = top.choice("dataset", DATASETS)
    measures = tuple(_column(r) for r in top.objects("measures"))
    if not measures:
        top.fail("measures", "needs at least one measure")
    _unique(top, "measures", [m.name for m in measures])

    items: tuple[ItemRule, ...] = ()
    sources: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    inputs: tuple[Column, ...] = ()
    time_column = ""
    if dataset == "findings":
        jobs = top.strings("jobs")
        inputs = tuple(_column(r, sql_required=False) for r in top.objects("input"))
        time_column = top.get("time_column", str)
        if time_column not in {c.name for c in inputs}:
            top.fail("time_column", f"{time_column!r} is not one of the input columns")
    else:
        sources = top.strings("sources")
        rules = []
        for r in top.objects("items"):
            r.unknown({"metric", "keys", "check"})
            keys = r.strings("keys")
            if not keys:
                r.fail("keys", "needs at least one key pattern")
            rules.append(ItemRule(metric=r.name("metric"), keys=keys, check=r.get("check", bool, False)))
        items = tuple(rules)
        if not items:
            top.fail("items", "needs at least one item rule")

    facts = []
    for r in top.objects("facts"):
        r.unknown({"table", "grain", "dataset", "dimensions", "attributes", "measures"})
        table = r.name("table")
        if not table.startswith("fact_"):
            r.fail("table", f"{table!r} must start with 'fact_' (dim_ names are reserved)")
        dims = r.strings("dimensions")
        for i, d in enumerate(dims):
            if d not in DIMENSIONS:
                r.fail(f"dimensions[{i}]", f"{d!r} is not one of {', '.join(DIMENSIONS)}")
            if dataset == "findings":
                r.fail(f"dimensions[{i}]", "findings have no host/item dimensions; use attributes")
        if "item" in dims and "host" not in dims:
            r.fail("dimensions", "'item' needs 'host' too (an item belongs to one host)")
        attributes = tuple(_column(a) for a in r.objects("attributes", []))
        wanted = r.strings("measures", tuple(m.name for m in measures))
        by_name = {m.name: m for m in measures}
        for i, m in enumerate(wanted):
            if m not in by_name:
                r.fail(f"measures[{i}]", f"{m!r} is not a measure of this definition")
        fact_dataset = r.choice("dataset", DATASETS, dataset)
        if fact_dataset != dataset and (dataset not in ("5m", "1h") or fact_dataset not in ("5m", "1h")):
            r.fail("dataset", f"{fact_dataset!r}: a fact may only switch between the rollups 5m and 1h "
                              f"(its measures are written for the definition's {dataset!r})")
        fact = Fact(table=table, grain=r.choice("grain", GRAINS), dataset=fact_dataset, dimensions=dims, attributes=attributes,
                    measures=tuple(by_name[m] for m in wanted))
        _unique(r, "columns", _fact_column_names(fact))
        facts.append(fact)
    if not facts:
        top.fail("facts", "needs at least one fact table")
    _unique(top, "facts", [f.table for f in facts])

    lookback = top.get("series_lookback_days", int, 0)
    if lookback < 0:
        top.fail("series_lookback_days", "must be >= 0")
    return Definition(name=name, version=top.get("version", int), doc=top.get("doc", str), dataset=dataset,
                      path=path, sources=sources, items=items, jobs=jobs, time_column=time_column, input=inputs,
                      series_lookback_days=lookback, where=top.get("where", str, ""), measures=measures, facts=tuple(facts))


def _fact_column_names(fact: Fact) -> list[str]:
    from etl.extracts.model import fact_columns

    return [c.name for c in fact_columns(fact)]


def _unique(r: _Reader, key: str, names: list[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            r.fail(key, f"name {n!r} is used twice")
        seen.add(n)


def load(path: Path | str) -> Definition:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DefinitionError(path, "(file)", "does not exist") from exc
    except json.JSONDecodeError as exc:
        raise DefinitionError(path, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}") from exc
    return parse(path, data)


def load_all(directory: Path | str = DEFINITIONS_DIR) -> dict[str, Definition]:
    return {d.name: d for d in (load(p) for p in sorted(Path(directory).glob("*.json")))}


def select(names: str | list[str], directory: Path | str = DEFINITIONS_DIR) -> list[Definition]:
    """'all', one name, or a list of names -> definitions; an unknown name is a ConfigError listing the known."""
    known = load_all(directory)
    wanted = list(known) if names in ("all", ["all"]) else ([names] if isinstance(names, str) else list(names))
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ConfigError(f"no extract definition named {missing[0]!r} in {directory} (known: {', '.join(known)})")
    return [known[n] for n in wanted]
