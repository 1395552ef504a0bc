"""A run keeps the objects older than itself out of the collector's full passes, and gives them
back when the last run (nested or concurrent) ends, also after a failure."""

import gc

import pytest

from etl import ingest


def test_older_objects_are_frozen_during_runs_and_released_after():
    gc.unfreeze()
    older = [object() for _ in range(10)]
    with ingest._old_objects_frozen():
        assert gc.get_freeze_count() > 0
        with ingest._old_objects_frozen():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the outer run still runs
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with ingest._old_objects_frozen():
            raise RuntimeError("run failed")
    assert gc.get_freeze_count() == 0
    del older
