"""The star schema of an extract: fact columns derived from a definition, the dimension tables, and
their assumed primary and foreign keys (declared in Hyper so Tableau builds the data model itself)."""

from __future__ import annotations

from dataclasses import dataclass

from etl.extracts.definition import Column, Definition, Fact

SCHEMA = "Extract"  # Tableau's conventional schema name inside a .hyper file

# Key column of each conformed dimension in a fact, and the dim table it references (None: no table).
DIMENSION_KEYS = {
    "host": ("host_key", "dim_host"),
    "item": ("item_key", "dim_item"),
    "host_group": ("group_key", "dim_host_group"),
    "metric": ("metric", None),
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[str, str, str], ...] = ()  # (column, referenced table, referenced column)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: str, doc: str = "") -> Column:
    return Column(name=name, type=type_, sql=name, doc=doc)


DIM_HOST = Table("dim_host", (
    _c("host_key", "text", "source:host"), _c("source", "text"), _c("host", "text", "technical host name"),
    _c("host_name", "text", "visible name"), _c("host_groups", "text", "group names, comma separated"),
    _c("last_seen_utc", "timestamptz", "newest sample these attributes come from"),
), ("host_key",))
DIM_HOST_GROUP = Table("dim_host_group", (_c("group_key", "text"), _c("group_name", "text")), ("group_key",))
BRIDGE_HOST_GROUP = Table("bridge_host_group", (_c("host_key", "text"), _c("group_key", "text")),
                          ("host_key", "group_key"),
                          (("host_key", "dim_host", "host_key"), ("group_key", "dim_host_group", "group_key")))
DIM_ITEM = Table("dim_item", (
    _c("item_key", "text", "source:itemid"), _c("source", "text"), _c("itemid", "bigint"), _c("key", "text"),
    _c("item_name", "text"), _c("units", "text"), _c("value_type", "int"), _c("metric", "text"),
    _c("last_seen_utc", "timestamptz", "newest sample these attributes come from"),
), ("item_key",))
DIM_DATE = Table("dim_date", (
    _c("date_key", "date", "report-local calendar day"), _c("year", "int"), _c("quarter", "int"),
    _c("month", "int"), _c("month_name", "text"), _c("day", "int"), _c("iso_year", "int"), _c("iso_week", "int"),
    _c("week_start", "date"), _c("day_of_week", "int", "1 = Monday"), _c("day_name", "text"),
    _c("is_weekend", "bool"),
), ("date_key",))

PERIOD_COLUMNS = (
    _c("date_key", "date", "report-local date of the period start"),
    _c("period_start_local", "timestamp", "period start in the report time zone"),
    _c("period_start_utc", "timestamptz"),
    _c("period_end_utc", "timestamptz"),
)
LOCAL_HOUR = _c("local_hour", "int", "hour of day in the report time zone (hour grain only)")


def fact_columns(fact: Fact) -> list[Column]:
    keys = [_c(DIMENSION_KEYS[d][0], "text") for d in fact.dimensions]
    period = list(PERIOD_COLUMNS) + ([LOCAL_HOUR] if fact.grain == "hour" else [])
    return keys + list(fact.attributes) + period + list(fact.measures)


def fact_table(fact: Fact) -> Table:
    keys = [DIMENSION_KEYS[d][0] for d in fact.dimensions] + [a.name for a in fact.attributes] + ["date_key"]
    if fact.grain == "hour":
        keys.append("local_hour")
    fks = [(DIMENSION_KEYS[d][0], DIMENSION_KEYS[d][1], DIMENSION_KEYS[d][0])
           for d in fact.dimensions if DIMENSION_KEYS[d][1]]
    fks.append(("date_key", "dim_date", "date_key"))
    return Table(fact.table, tuple(fact_columns(fact)), tuple(keys), tuple(fks))


def dimension_tables(definition: Definition) -> list[Table]:
    """Dimension tables of one extract, referenced tables first (so foreign keys can be declared)."""
    used = {d for f in definition.facts for d in f.dimensions}
    tables = [DIM_DATE]
    if used & {"host", "host_group"}:
        tables += [DIM_HOST, DIM_HOST_GROUP, BRIDGE_HOST_GROUP]
    if "item" in used:
        tables.append(DIM_ITEM)
    return tables


def all_tables(definition: Definition) -> list[Table]:
    return dimension_tables(definition) + [fact_table(f) for f in definition.facts]
