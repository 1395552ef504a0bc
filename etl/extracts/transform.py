"""Pure transforms: lake rows (Arrow) of one span -> fact and dimension tables (Arrow), in DuckDB.

The definition's measure SQL runs over one row per sample (raw) or bucket (rollups) with columns:
  points:   source, host, itemid, metric, is_check (its item rule has "check": true), ts,
            raw: value, clock, ns            rollups: bucket, min, max, sum, count, last, value (= sum/count)
            (names, keys and groups are per series, in the dimension tables)
  findings: the definition's input columns, ts
  always:   date_key, period_start_local, period_start_utc, period_end_utc, local_hour,
            period_minutes (minutes of the period inside the lake's published days)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from etl.extracts import model
from etl.extracts.definition import Definition, Fact
from etl.extracts.periods import Period, periods
from etl.errors import StoreError
from etl.window import Window

ARROW_TYPES = {
    "text": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "double": pa.float64(),
    "date": pa.date32(), "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us"),
    "bool": pa.bool_(), "uint": pa.decimal128(20, 0), "decimal38": pa.decimal128(38, 0),
}


def arrow_schema(table: model.Table) -> pa.Schema:
    return pa.schema([(c.name, ARROW_TYPES[c.type]) for c in table.columns])


def like_pattern(glob: str) -> str:
    """Zabbix key glob (only '*' is special; brackets and commas are literal) -> SQL LIKE with '\\' escape."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def metric_case(definition: Definition) -> str:
    """CASE expression naming the metric of an item key; the first matching rule wins."""
    whens = []
    for rule in definition.items:
        cond = " OR ".join(f"key LIKE {_quote(like_pattern(k))} ESCAPE '\\'" for k in rule.keys)
        whens.append(f"WHEN {cond} THEN {_quote(rule.metric)}")
    return "CASE " + " ".join(whens) + " END"


def check_expr(definition: Definition) -> str:
    """Boolean SQL over `metric`: whether the item is one of the definition's 0/1 check items."""
    checks = [rule.metric for rule in definition.items if rule.check]
    return f"metric IN ({', '.join(_quote(m) for m in checks)})" if checks else "false"


def periods_table(span_periods: list[Period], coverage: Window | None) -> pa.Table:
    """Periods as a table; period_minutes counts only the part the lake covers (before its first or
    after its last published day nothing is known, which is not the same as 'no data')."""
    def minutes(p: Period) -> float:
        start, end = p.start_utc, p.end_utc
        if coverage is not None:
            start, end = max(start, coverage.start), min(end, coverage.end)
        return max(0.0, (end - start).total_seconds() / 60)

    return pa.table({
        "date_key": pa.array([p.date_key for p in span_periods], pa.date32()),
        "period_start_local": pa.array([p.start_local for p in span_periods], pa.timestamp("us")),
        "period_start_utc": pa.array([p.start_utc for p in span_periods], pa.timestamp("us", tz="UTC")),
        "period_end_utc": pa.array([p.end_utc for p in span_periods], pa.timestamp("us", tz="UTC")),
        "local_hour": pa.array([p.local_hour for p in span_periods], pa.int32()),
        "start_s": pa.array([int(p.start_utc.timestamp()) for p in span_periods], pa.int64()),
        "end_s": pa.array([int(p.end_utc.timestamp()) for p in span_periods], pa.int64()),
        "period_minutes": pa.array([minutes(p) for p in span_periods], pa.float64()),
    })


@dataclass
class SpanResult:
    facts: dict[str, pa.Table]
    dims: dict[str, pa.Table]


@dataclass(frozen=True)
class ParquetRows:
    """Lake rows as Parquet files for DuckDB to scan itself (column pruning, row-group skipping,
    constant memory), limited to [window) on the time column."""
    files: list[str]
    time_column: str
    window: Window
    empty: pa.Schema  # the columns when there is no file


class SpanFrame:
    """DuckDB over the lake rows of one span (widened by the series look-back): an Arrow table, or
    Parquet files scanned in place."""

    def __init__(self, definition: Definition, rows: pa.Table | ParquetRows, tz: str,
                 coverage: Window | None = None):
        self.definition = definition
        self.tz = tz
        self.coverage = coverage
        # One thread: parallel aggregation adds float partial sums in varying order, and a re-run
        # of a day must give bit-identical rows (Tableau users compare extracts across days).
        self.con = duckdb.connect(config={"threads": 1})
        self.con.execute("SET TimeZone = 'UTC'")
        if isinstance(rows, ParquetRows) and rows.files:
            files = ", ".join(_quote(f) for f in rows.files)  # a view cannot take bound parameters
            self.con.execute(
                f"CREATE TEMP VIEW src AS SELECT * FROM read_parquet([{files}], union_by_name = true, "
                f"hive_partitioning = false) WHERE {rows.time_column} >= {rows.window.start_s} "
                f"AND {rows.time_column} < {rows.window.end_s}")
        else:
            self.con.register("src", rows.empty.empty_table() if isinstance(rows, ParquetRows) else rows)
        names = [r[0] for r in self.con.execute("DESCRIBE src").fetchall()]
        self._matched_view(names)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "SpanFrame":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _matched_view(self, columns: list[str]) -> None:
        d = self.definition
        names = set(columns)
        if not d.is_points:
            missing = [c.name for c in d.input if c.name not in names]
            if missing:
                raise StoreError(f"findings rows lack column {missing[0]!r} required by {d.path} (input)")
            cols = ", ".join(f"CAST({c.name} AS {c.duckdb_type}) AS {c.name}" for c in d.input)
            where = f"WHERE {d.where}" if d.where else ""
            self.con.execute(f"CREATE TEMP VIEW matched AS SELECT * FROM (SELECT {cols}, "
                             f"epoch(CAST({d.time_column} AS TIMESTAMPTZ)) AS ts FROM src) {where}")
            return
        if "bucket" in names:  # rollups
            values = "bucket, min, max, sum, count, last, sum / nullif(count, 0) AS value, bucket AS ts"
        else:
            values = "value, clock, ns, clock AS ts"
        sources = ", ".join(_quote(s) for s in d.sources)
        # Raw points partitions also hold Zabbix trend rows (resolution 1h, hourly averages): a raw
        # measure must not mix them with samples.
        raw_only = " AND resolution = 'raw'" if "resolution" in names else ""
        # The metric of each distinct key once (the LIKE rules are the costly part), then the
        # matching rows materialised once: every fact and dimension query of the span reads them.
        self.con.execute(
            f"CREATE TEMP TABLE metric_of_key AS SELECT *, {check_expr(d)} AS is_check FROM ("
            f"SELECT key, {metric_case(d)} AS metric FROM (SELECT DISTINCT key FROM src)) WHERE metric IS NOT NULL")
        # Narrow on purpose (no names, no group lists): copying those per sample dominated the
        # build; the attributes live once per series in `series`.
        filters = f"source IN ({sources}) AND value_type IN (0, 3){raw_only}"
        self.con.execute(
            "CREATE TEMP TABLE matched AS SELECT * FROM ("
            f"SELECT source, host, itemid, k.metric, k.is_check, {values} FROM src JOIN metric_of_key k ON src.key = k.key "
            f"WHERE {filters}){' WHERE (' + d.where + ')' if d.where else ''}")
        # Newest attributes of each series (a host renamed or regrouped mid-span shows its new ones).
        ts = "bucket" if "bucket" in names else "clock"
        self.con.execute(f"""
            CREATE TEMP TABLE series AS
            SELECT s.source, s.host, s.itemid, any_value(s.host_name) AS host_name,
                   any_value(s.host_groups) AS host_groups, any_value(s.key) AS key,
                   any_value(s.item_name) AS item_name, any_value(s.units) AS units,
                   any_value(s.value_type) AS value_type, any_value(k.metric) AS metric, l.ts
            FROM src s JOIN metric_of_key k ON s.key = k.key
            JOIN (SELECT source, host, itemid, max(ts) AS ts FROM matched GROUP BY ALL) l
              ON s.source = l.source AND s.host = l.host AND s.itemid = l.itemid AND s.{ts} = l.ts
            WHERE {filters.replace("source IN", "s.source IN")}
            GROUP BY s.source, s.host, s.itemid, l.ts""")
        self.con.execute("""
            CREATE TEMP TABLE groups_of_host AS
            SELECT source, host, arg_max(host_groups, ts) AS host_groups FROM series GROUP BY source, host""")

    def fact(self, fact: Fact, span: tuple[dt.date, dt.date]) -> pa.Table:
        self.con.register("periods", periods_table(periods(span, fact.grain, self.tz), self.coverage))
        table = model.fact_table(fact)
        fill = self.definition.series_lookback_days > 0 and "host_group" not in fact.dimensions
        if fill:
            # Series seen in the look-back but silent in a period still get a row (e.g. a host down all day).
            rows = ("SELECT s.source, s.host, s.itemid, s.metric, "
                    "m.* EXCLUDE (source, host, itemid, metric), p.* "
                    "FROM (SELECT DISTINCT source, host, itemid, metric FROM matched) s CROSS JOIN periods p "
                    "LEFT JOIN matched m ON m.source = s.source AND m.host = s.host AND m.itemid = s.itemid "
                    "AND m.ts >= p.start_s AND m.ts < p.end_s")
        else:
            rows = "SELECT m.*, p.* FROM matched m JOIN periods p ON m.ts >= p.start_s AND m.ts < p.end_s"
        if "host_group" in fact.dimensions:
            rows = (f"SELECT r.*, unnest(g.host_groups) AS group_name FROM ({rows}) r "
                    "JOIN groups_of_host g ON g.source = r.source AND g.host = r.host")
        key_sql = {
            "host": "source || ':' || host",
            "item": "source || ':' || CAST(itemid AS VARCHAR)",
            "host_group": "group_name",
            "metric": "metric",
        }
        select = []
        for d in fact.dimensions:
            select.append(f"{key_sql[d]} AS {model.DIMENSION_KEYS[d][0]}")
        for a in fact.attributes:
            expr = f"coalesce(CAST(({a.sql}) AS VARCHAR), '')" if a.type == "text" else f"CAST(({a.sql}) AS {a.duckdb_type})"
            select.append(f"{expr} AS {a.name}")
        group_n = len(select)
        period_cols = ["date_key", "period_start_local", "period_start_utc", "period_end_utc"]
        if fact.grain == "hour":
            period_cols.append("local_hour")
        select += period_cols
        group_n += len(period_cols)
        select += [f"CAST(({m.sql}) AS {m.duckdb_type}) AS {m.name}" for m in fact.measures]
        group_by = ", ".join(str(i + 1) for i in range(group_n))
        sql = f"SELECT {', '.join(select)} FROM ({rows}) GROUP BY {group_by} ORDER BY {group_by}"
        try:
            result = self.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"extract {self.definition.name}, fact {fact.table} ({self.definition.path}): "
                             f"query failed: {exc}") from exc
        return result.cast(arrow_schema(table))

    def dims(self, table_names: list[str]) -> dict[str, pa.Table]:
        """Host, group, bridge and item rows seen in these lake rows (latest attributes win)."""
        queries = {
            "dim_host": "SELECT source || ':' || host AS host_key, source, host, "
                        "arg_max(host_name, ts) AS host_name, "
                        "array_to_string(list_sort(arg_max(host_groups, ts)), ', ') AS host_groups, "
                        "to_timestamp(max(ts)) AS last_seen_utc FROM series GROUP BY source, host",
            "dim_host_group": "SELECT DISTINCT g AS group_key, g AS group_name "
                              "FROM (SELECT unnest(host_groups) AS g FROM series) WHERE g IS NOT NULL",
            "bridge_host_group": "SELECT DISTINCT host_key, g AS group_key FROM ("
                                 "SELECT source || ':' || host AS host_key, "
                                 "unnest(arg_max(host_groups, ts)) AS g FROM series GROUP BY source, host) "
                                 "WHERE g IS NOT NULL",
            "dim_item": "SELECT source || ':' || CAST(itemid AS VARCHAR) AS item_key, source, itemid, key, "
                        "item_name, units, CAST(value_type AS INTEGER) AS value_type, metric, "
                        "to_timestamp(ts) AS last_seen_utc FROM series",
        }
        out = {}
        for name in table_names:
            if name in queries:
                table = next(t for t in model.dimension_tables(self.definition) if t.name == name)
                result = self.con.sql(f"SELECT {', '.join(table.column_names)} FROM ({queries[name]}) "
                                      f"ORDER BY 1").to_arrow_table()
                out[name] = result.cast(arrow_schema(table))
        return out


def date_dimension(days: list[dt.date]) -> pa.Table:
    rows = sorted(set(days))
    iso = [d.isocalendar() for d in rows]
    return pa.table({
        "date_key": pa.array(rows, pa.date32()),
        "year": pa.array([d.year for d in rows], pa.int32()),
        "quarter": pa.array([(d.month - 1) // 3 + 1 for d in rows], pa.int32()),
        "month": pa.array([d.month for d in rows], pa.int32()),
        "month_name": pa.array([f"{d:%B}" for d in rows], pa.string()),
        "day": pa.array([d.day for d in rows], pa.int32()),
        "iso_year": pa.array([i[0] for i in iso], pa.int32()),
        "iso_week": pa.array([i[1] for i in iso], pa.int32()),
        "week_start": pa.array([d - dt.timedelta(days=d.weekday()) for d in rows], pa.date32()),
        "day_of_week": pa.array([i[2] for i in iso], pa.int32()),
        "day_name": pa.array([f"{d:%A}" for d in rows], pa.string()),
        "is_weekend": pa.array([d.weekday() >= 5 for d in rows], pa.bool_()),
    }).cast(arrow_schema(model.DIM_DATE))
