"""Pure parts of the two-tier integrity checks: the per-item loss guard, the reconciliation floor
and the staleness rule of a left-over write block."""

from __future__ import annotations

import datetime as dt
import os
import socket

from etl.lake import reconcile, write_block
from etl.lake.compact import _horizon_end, describe_loss, fewer_points
from etl.config import Settings


def test_loss_guard_names_items_and_numbers():
    loss = fewer_points({"1": 10, "2": 5}, {"1": 10, "3": 4}, {"1": 10, "3": 4})
    assert loss == {"2": (5, 0, 0)}
    assert describe_loss(loss) == "5 points of 1 items (item 2: lake 5, index 0, new 0)"
    assert fewer_points({"1": 3}, {"1": 2}, {"1": 3}) == {}
    assert fewer_points({"1": 3}, {"1": 4}, {"1": 3}) == {"1": (3, 4, 3)}  # fewer than the index held
    many = {str(i): (2, 1, 1) for i in range(12)}
    assert describe_loss(many).endswith("and 2 more items)")


def test_reconciliation_floor_is_what_the_store_held():
    record = {"buckets": {"3600": {"source": 10, "missing": 2}, "7200": {"source": 5, "missing": 0}}}
    assert reconcile.shortfalls(record, {3600: 8, 7200: 5}) == []
    assert reconcile.shortfalls(record, {3600: 9, 7200: 6}) == []  # more than counted (late values) is fine
    short = reconcile.shortfalls(record, {3600: 7})
    assert short == ["1970-01-01T01:00Z: lake 7, source 10 (2 known missing)",
                     "1970-01-01T02:00Z: lake 0, source 5 (0 known missing)"]


def test_write_block_staleness():
    now = dt.datetime.now(dt.timezone.utc)
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": now.isoformat()}
    assert not write_block.is_stale(mine)  # a live holder, young
    assert write_block.is_stale({**mine, "since": (now - dt.timedelta(hours=7)).isoformat()})
    dead = 2 ** 22 + 12345
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead += 1
    assert write_block.is_stale({**mine, "pid": dead})  # its holder is gone
    assert not write_block.is_stale({"host": "elsewhere", "pid": 1, "since": now.isoformat()})
    assert write_block.is_stale({"run_id": "unknown"})  # no record: not left by a live compaction


def test_horizon_end():
    settings = Settings(late_horizon_hours=24)
    assert _horizon_end(settings, dt.date(2026, 11, 1)) == dt.datetime(2026, 11, 3, tzinfo=dt.timezone.utc)
