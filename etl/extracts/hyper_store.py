"""Writing .hyper files: star-schema DDL with assumed keys, span replacement and dimension upserts.

A build works on a copy of the extract next to it and renames it over the old file only after the
transaction committed, so a reader (Tableau, a copy job on the NFS folder) never sees half a build,
and a failed build leaves the previous extract untouched."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.locks import exclusive
from etl.extracts import model

try:  # imported lazily by callers through this module only
    from tableauhyperapi import Connection, CreateMode, HyperException, HyperProcess, Telemetry
except ImportError as exc:  # pragma: no cover - the package is a declared dependency
    raise ImportError("tableauhyperapi is required for extracts") from exc


# Column types stored as 128-bit numerics in Hyper, which only database file version 3 and later
# hold; files without them keep the process default (readable by older Tableau releases).
WIDE_NUMERIC_TYPES = frozenset({"uint", "decimal38"})
WIDE_NUMERIC_DATABASE_VERSION = 3


def needs_wide_numerics(tables: list[model.Table]) -> bool:
    return any(c.type in WIDE_NUMERIC_TYPES for t in tables for c in t.columns)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str) -> str:
    return f"{_ident(model.SCHEMA)}.{_ident(table)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table_sql(table: model.Table) -> str:
    cols = [f"{_ident(c.name)} {c.hyper_type}" + (" NOT NULL" if c.name in table.primary_key else "")
            for c in table.columns]
    cols.append(f"ASSUMED PRIMARY KEY ({', '.join(_ident(k) for k in table.primary_key)})")
    for column, ref_table, ref_column in table.foreign_keys:
        cols.append(f"ASSUMED FOREIGN KEY ({_ident(column)}) REFERENCES {qualified(ref_table)} ({_ident(ref_column)})")
    return f"CREATE TABLE {qualified(table.name)} ({', '.join(cols)})"


@contextlib.contextmanager
def hyper_process() -> Iterator[HyperProcess]:
    # No usage data leaves the machine; hyperd's own log is off (monetl logs what it does).
    with HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU, parameters={"log_config": ""}) as process:
        yield process


def _lock(path: Path):
    return exclusive(path.with_name(path.name + ".lock"))


class ExtractWriter:
    """One build of one extract file: open a working copy, write in one transaction, publish by rename."""

    def __init__(self, process: HyperProcess, path: Path, tables: list[model.Table], fresh: bool = False):
        self.process, self.path, self.tables, self.fresh = process, Path(path), tables, fresh
        self.conn: Connection | None = None
        self._stack = contextlib.ExitStack()
        self._scratch = Path(tempfile.mkdtemp(prefix="monetl-extract-"))
        self._parquet_n = 0

    def __enter__(self) -> "ExtractWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stack.enter_context(_lock(self.path))
        # Under the lock no other build of this file runs: any working copy left is from a killed one.
        for stale in self.path.parent.glob(f".{self.path.name}.building-*"):
            stale.unlink(missing_ok=True)
        self.work = self.path.with_name(f".{self.path.name}.building-{os.getpid()}")
        if self.path.exists() and not self.fresh:
            shutil.copyfile(self.path, self.work)
            mode = CreateMode.NONE
        else:
            self.work.unlink(missing_ok=True)
            mode = CreateMode.CREATE
        try:
            if mode == CreateMode.CREATE and needs_wide_numerics(self.tables):
                with Connection(self.process.endpoint) as bare:
                    bare.execute_command(f"CREATE DATABASE {_ident(str(self.work))} "
                                         f"WITH VERSION {WIDE_NUMERIC_DATABASE_VERSION}")
                mode = CreateMode.NONE
            self.conn = Connection(self.process.endpoint, str(self.work), mode)
            self._ensure_tables()
            self.conn.execute_command("BEGIN TRANSACTION")
        except HyperException as exc:
            self._abort()
            raise StoreError(f"cannot open extract {self.path}: {exc}") from exc
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self.conn.execute_command("COMMIT")
            self.conn.close()
            self.conn = None
            os.replace(self.work, self.path)
        except HyperException as err:
            self._abort()
            raise StoreError(f"cannot commit extract {self.path}: {err}") from err
        finally:
            self._cleanup()

    def _abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        self.work.unlink(missing_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._stack.close()

    def _ensure_tables(self) -> None:
        self.conn.execute_command(f"CREATE SCHEMA IF NOT EXISTS {_ident(model.SCHEMA)}")
        existing = {name.name.unescaped for name in self.conn.catalog.get_table_names(model.SCHEMA)}
        for table in self.tables:
            if table.name not in existing:
                self.conn.execute_command(create_table_sql(table))
                continue
            from tableauhyperapi import TableName

            have = [c.name.unescaped for c in self.conn.catalog.get_table_definition(
                TableName(model.SCHEMA, table.name)).columns]
            if have != table.column_names:
                raise StoreError(f"extract {self.path}: table {table.name} has columns {have}, the definition "
                                 f"now gives {table.column_names}; rebuild it with `monetl extracts build --fresh`")

    def _stage(self, rows: pa.Table) -> str:
        self._parquet_n += 1
        path = self._scratch / f"stage-{self._parquet_n}.parquet"
        pq.write_table(rows, path)
        return f"external({_literal(str(path))}, FORMAT => 'parquet')"

    def _execute(self, sql: str) -> int:
        try:
            return self.conn.execute_command(sql)
        except HyperException as exc:
            raise StoreError(f"extract {self.path}: {exc} (statement: {sql[:200]})") from exc

    def replace_span(self, table: model.Table, span: tuple[dt.date, dt.date], rows: pa.Table) -> int:
        """Delete the span's rows of a fact table and insert the new ones; returns rows inserted."""
        self._execute(f"DELETE FROM {qualified(table.name)} WHERE date_key >= DATE {_literal(span[0].isoformat())} "
                      f"AND date_key < DATE {_literal(span[1].isoformat())}")
        return self._insert(table, rows)

    def _insert(self, table: model.Table, rows: pa.Table, where: str = "") -> int:
        if rows.num_rows == 0:
            return 0
        cols = ", ".join(_ident(c) for c in table.column_names)
        source = self._stage(rows.select(table.column_names))
        return self._execute(f"INSERT INTO {qualified(table.name)} ({cols}) SELECT {cols} FROM {source} {where}")

    def upsert_latest(self, table: model.Table, rows: pa.Table, key: str) -> list[str]:
        """Insert new keys; replace existing ones only from rows seen at least as recently (a rebuild of
        an old day must not bring back a host's old name). Returns the keys written."""
        if rows.num_rows == 0:
            return []
        source = self._stage(rows.select(table.column_names))
        target, k = qualified(table.name), _ident(key)
        # Hyper refuses DDL (temp tables) inside a DML transaction: compare against the staged file.
        written = [r[0] for r in self.conn.execute_list_query(
            f"SELECT i.{k} FROM {source} i LEFT JOIN {target} t ON t.{k} = i.{k} "
            f"WHERE t.{k} IS NULL OR i.last_seen_utc >= t.last_seen_utc")]
        self._execute(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {source} i "
                      f"WHERE i.{k} = {target}.{k} AND i.last_seen_utc >= {target}.last_seen_utc)")
        cols = ", ".join(_ident(c) for c in table.column_names)
        self._execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source} "
                      f"WHERE {k} NOT IN (SELECT {k} FROM {target})")
        return written

    def replace_children(self, table: model.Table, rows: pa.Table, key: str, keys: list[str]) -> None:
        """Bridge rows of the given parents are replaced by the new ones."""
        if not keys:
            return
        values = ", ".join(_literal(k) for k in keys)
        self._execute(f"DELETE FROM {qualified(table.name)} WHERE {_ident(key)} IN ({values})")
        wanted = rows.filter(pc.is_in(rows[key], value_set=pa.array(keys, pa.string())))
        self._insert(table, wanted)

    def insert_missing(self, table: model.Table, rows: pa.Table, key: str) -> int:
        if rows.num_rows == 0:
            return 0
        target = qualified(table.name)
        return self._insert(table, rows, where=f"WHERE {_ident(key)} NOT IN (SELECT {_ident(key)} FROM {target})")

    def counts(self) -> dict[str, int]:
        return {t.name: self.conn.execute_scalar_query(f"SELECT count(*) FROM {qualified(t.name)}")
                for t in self.tables}


def read_query(process: HyperProcess, path: Path, sql: str) -> list[list]:
    with Connection(process.endpoint, str(path), CreateMode.NONE) as conn:
        return conn.execute_list_query(sql)


@contextlib.contextmanager
def open_readers(process: HyperProcess, paths: dict[str, Path]) -> Iterator[dict[str, Connection]]:
    """One read connection per existing file, closed together."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(Connection(process.endpoint, str(path), CreateMode.NONE))
               for name, path in paths.items()}


def declared_keys(process: HyperProcess, path: Path) -> dict[str, dict]:
    """From Hyper's catalog: {table: {"primary_key": bool, "references": sorted referenced tables}}."""
    with Connection(process.endpoint, str(path), CreateMode.NONE) as conn:
        names = {oid: name for oid, name in conn.execute_list_query(
            "SELECT oid, relname FROM pg_catalog.pg_class")}
        out: dict[str, dict] = {}
        for contype, relid, refid in conn.execute_list_query(
                "SELECT contype, conrelid, confrelid FROM pg_catalog.pg_constraint"):
            entry = out.setdefault(names.get(relid, str(relid)), {"primary_key": False, "references": []})
            if contype == "p":
                entry["primary_key"] = True
            elif contype == "f":
                entry["references"].append(names.get(refid, str(refid)))
        for entry in out.values():
            entry["references"].sort()
        return out
