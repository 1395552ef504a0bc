"""Writes history and trends straight into the Zabbix database, where the server itself writes
them: bulk COPY for seeding long histories (the trapper would take hours for millions of values).

Rows inserted here produce no trends by themselves, so `rebuild_trends` recomputes the hourly
min/avg/max/num of every touched hour from the history rows actually stored."""

from __future__ import annotations

import contextlib
import io
from typing import Iterable

import pyarrow as pa
import pyarrow.csv as pacsv

from etl.config import Settings
from etl.errors import SourceError

# value_type -> (history table, columns after itemid/clock/ns/value)
HISTORY_TABLES = {0: "history", 1: "history_str", 2: "history_log", 3: "history_uint", 4: "history_text"}
LOG_COLUMNS = ("timestamp", "source", "severity", "logeventid")
TRENDS_TABLES = {0: "trends", 3: "trends_uint"}
# The local stack's Zabbix DB owner (etl/services/postgres.py creates it).
ZABBIX_DB_OWNER, ZABBIX_DB_OWNER_PASSWORD = "zabbix", "zabbix"
_ARROW_TYPES = {"itemid": pa.int64(), "clock": pa.int64(), "ns": pa.int64(), "timestamp": pa.int64(),
                "source": pa.string(), "severity": pa.int64(), "logeventid": pa.int64()}


def history_columns(value_type: int) -> tuple[str, ...]:
    base = ("itemid", "clock", "ns", "value")
    return base + LOG_COLUMNS if value_type == 2 else base


def _value_arrow_type(value_type: int) -> pa.DataType:
    return {0: pa.float64(), 3: pa.uint64()}.get(value_type, pa.string())


@contextlib.contextmanager
def writer_connection(settings: Settings):
    """psycopg2 connection to the local Zabbix DB as its owner (the user the server writes as);
    commits on success, rolls back on error. Not settings.zabbix_db_url: that is the extraction
    mode's read-only access and must stay unable to write."""
    import psycopg2

    try:
        conn = psycopg2.connect(host="127.0.0.1", port=settings.pg_port, user=ZABBIX_DB_OWNER,
                                password=ZABBIX_DB_OWNER_PASSWORD, dbname="zabbix", connect_timeout=10)
    except psycopg2.Error as exc:
        raise SourceError(f"Zabbix DB 127.0.0.1:{settings.pg_port}/zabbix as {ZABBIX_DB_OWNER}: "
                          f"cannot connect: {str(exc).strip()}") from exc
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _as_table(value_type: int, rows) -> pa.Table:
    columns = history_columns(value_type)
    if isinstance(rows, pa.Table):
        return rows.select(list(columns))
    rows = list(rows)
    arrays = {}
    for i, name in enumerate(columns):
        typ = _value_arrow_type(value_type) if name == "value" else _ARROW_TYPES[name]
        values = [r[i] for r in rows]
        if name == "value" and value_type in (1, 2, 4):
            values = [str(v) for v in values]
        arrays[name] = pa.array(values, type=typ)
    return pa.table(arrays)


def copy_table(conn, table_name: str, table: pa.Table) -> int:
    """COPY an Arrow table into `table_name` (columns by name); returns the row count."""
    if table.num_rows == 0:
        return 0
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table_name} ({', '.join(table.column_names)}) FROM STDIN WITH (FORMAT csv)", buf)
    return table.num_rows


def insert_history(conn, value_type: int, rows) -> int:
    """Insert history rows of one value type. `rows` is a pyarrow Table with the columns of
    history_columns(value_type), or tuples in that order: (itemid, clock, ns, value) and for
    log items also (timestamp, source, severity, logeventid). Returns the row count."""
    if value_type not in HISTORY_TABLES:
        raise ValueError(f"unknown Zabbix value_type {value_type!r}")
    return copy_table(conn, HISTORY_TABLES[value_type], _as_table(value_type, rows))


def delete_history(conn, value_type: int, itemids: Iterable[int], start: int, end: int) -> int:
    """Delete history rows of these items with start <= clock < end; returns how many."""
    ids = [int(i) for i in itemids]
    if not ids:
        return 0
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {HISTORY_TABLES[value_type]} WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s",
                    (ids, int(start), int(end)))
        return cur.rowcount


def analyze_history(conn, value_types: Iterable[int]) -> None:
    """ANALYZE the history tables of these value types (allowed inside the seeding transaction,
    whose own rows it counts)."""
    with conn.cursor() as cur:
        for value_type in value_types:
            cur.execute(f"ANALYZE {HISTORY_TABLES[value_type]}")


def rebuild_trends(conn, value_type: int, itemids: Iterable[int], start: int, end: int) -> int:
    """Recompute the trend rows of every hour touching [start, end) from the stored history, as
    the server would (uint average truncated to an integer). Returns the number of trend rows."""
    if value_type not in TRENDS_TABLES:
        return 0
    ids = [int(i) for i in itemids]
    if not ids:
        return 0
    first_hour = int(start) - int(start) % 3600
    after_last_hour = int(end) - int(end) % 3600 + (3600 if int(end) % 3600 else 0)
    avg = "avg(value)" if value_type == 0 else "trunc(sum(value) / count(*))"
    trends, history = TRENDS_TABLES[value_type], HISTORY_TABLES[value_type]
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {trends} WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s",
                    (ids, first_hour, after_last_hour))
        cur.execute(
            f"INSERT INTO {trends} (itemid, clock, num, value_min, value_avg, value_max) "
            f"SELECT itemid, clock - clock %% 3600, count(*), min(value), {avg}, max(value) FROM {history} "
            f"WHERE itemid = ANY(%s) AND clock >= %s AND clock < %s GROUP BY itemid, clock - clock %% 3600",
            (ids, first_hour, after_last_hour))
        return cur.rowcount


def delete_item_data(conn, itemids: Iterable[int]) -> int:
    """Delete every history and trend row of these items; returns how many rows."""
    ids = [int(i) for i in itemids]
    if not ids:
        return 0
    total = 0
    with conn.cursor() as cur:
        for table in (*HISTORY_TABLES.values(), *TRENDS_TABLES.values()):
            cur.execute(f"DELETE FROM {table} WHERE itemid = ANY(%s)", (ids,))
            total += cur.rowcount
    return total
