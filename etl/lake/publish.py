"""Atomic publish of lake partitions: everything is written under _staging/<run>/..., then the
partition directory is moved into place in one rename. Replacing a partition moves the old one to
_trash/<run>/... first and deletes it after the new one is in place, so a reader sees the old
partition, briefly none, or the new one: never a half-written one, never both."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.lake import layout, manifest
from etl.lake.storage import Storage

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 1_000_000
STALE_AFTER = dt.timedelta(hours=6)


def new_run_id(kind: str) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def write_parquet_file(table: pa.Table, path: Path) -> None:
    """ZSTD, row groups of ~1M rows (~128 MB for point rows), statistics on for pruning."""
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True)


@contextlib.contextmanager
def _local_target(storage: Storage, rel: str, scratch: Path):
    """A local file to write `rel` into: the staging file itself on a local lake, else a scratch
    file uploaded afterwards."""
    direct = storage.local_path(rel)
    if direct is not None:
        direct.parent.mkdir(parents=True, exist_ok=True)
        yield direct
        return
    tmp = scratch / uuid.uuid4().hex
    try:
        yield tmp
        storage.upload(tmp, rel)
    finally:
        tmp.unlink(missing_ok=True)


def stage_partition(storage: Storage, staging: str, table: pa.Table, meta: dict, scratch: Path,
                    checksum_columns, extra: dict | None = None) -> dict:
    """Write `table` as part-00000.parquet and its _manifest.json under `staging`.

    `meta` holds manifest fields (dataset, partition, run_id, schema_name, source_index,
    and optionally checksum / per_item already known from the scan). Returns the manifest."""
    storage.makedirs(staging)
    name = layout.PART.format(0)
    with _local_target(storage, layout.join(staging, name), scratch) as path:
        write_parquet_file(table, path)
    files = [{"name": name, "rows": table.num_rows, "bytes": storage.size(layout.join(staging, name))}]
    checksum = meta.get("checksum")
    if checksum is None:
        checksum = manifest.checksum_int(table, checksum_columns)
    built = manifest.build(meta["dataset"], meta["partition"], meta["run_id"], meta["schema_name"],
                           table.num_rows, checksum, files, per_item=meta.get("per_item"),
                           source_index=meta.get("source_index"), schema_version=meta.get("schema_version"),
                           extra=extra)
    storage.write_bytes(layout.join(staging, layout.MANIFEST), manifest.dumps(built))
    return built


def stage_written(storage: Storage, staging: str, write, rows: int, meta: dict, scratch: Path,
                  extra: dict | None = None) -> dict:
    """Like stage_partition for a file produced by `write(local_path) -> rows per itemid` (the
    out-of-core sort); the checksum in `meta` comes from the scan and is verified after publish."""
    storage.makedirs(staging)
    name = layout.PART.format(0)
    with _local_target(storage, layout.join(staging, name), scratch) as path:
        per_item = write(path)
    files = [{"name": name, "rows": rows, "bytes": storage.size(layout.join(staging, name))}]
    built = manifest.build(meta["dataset"], meta["partition"], meta["run_id"], meta["schema_name"], rows,
                           meta["checksum"], files, per_item=per_item, source_index=meta.get("source_index"),
                           extra=extra)
    storage.write_bytes(layout.join(staging, layout.MANIFEST), manifest.dumps(built))
    return built


def publish(storage: Storage, staging: str, target: str, run_id: str) -> None:
    """Move the staged partition into place, replacing what was there."""
    if storage.exists(target):
        trash = layout.trash_path(run_id, target)
        storage.rename(target, trash)
        storage.rename(staging, target)
        storage.delete(trash)
        log.info("replaced lake partition %s (run %s)", target, run_id)
    else:
        storage.rename(staging, target)
        log.info("published lake partition %s (run %s)", target, run_id)


def discard(storage: Storage, run_id: str) -> None:
    """Best effort: remove what is left of this run's staging and trash folders (after success,
    empty parents; after a failure, half-written files)."""
    try:
        for area in (layout.STAGING, layout.TRASH):
            storage.delete(layout.join(area, layout.encode_value(run_id)))
    except Exception:
        log.warning("could not remove staging of run %s; `sweep_stale` will", run_id, exc_info=True)


def _run_time(run_folder: str) -> dt.datetime | None:
    for part in layout.decode_value(run_folder).split("-"):
        try:
            return dt.datetime.strptime(part, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return None


def sweep_stale(storage: Storage, older_than: dt.timedelta = STALE_AFTER) -> list[str]:
    """Delete staging/trash folders of runs that started long ago (killed runs leave them);
    young ones may belong to a run still in progress and stay."""
    removed = []
    now = dt.datetime.now(dt.timezone.utc)
    for area in (layout.STAGING, layout.TRASH):
        for run_folder in storage.list(area):
            started = _run_time(run_folder)
            if started is not None and now - started > older_than:
                storage.delete(layout.join(area, run_folder))
                removed.append(layout.join(area, run_folder))
    return removed


def scratch_dir(settings) -> tempfile.TemporaryDirectory:
    base = Path(settings.home) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="lake-", dir=os.fspath(base))
