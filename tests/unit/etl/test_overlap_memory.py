"""etl.overlap_memory: exact membership of the ids a run loaded, the UUID guard, atomic saves."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from etl import overlap_memory as om

S = 1_000_000_000
LO, HI = 1_000 * S, 1_600 * S


def rows(points, resolution="raw"):
    itemid, clock, ns = zip(*points) if points else ((), (), ())
    return pa.RecordBatch.from_pydict({"itemid": pa.array(itemid, pa.int64()), "clock": pa.array(clock, pa.int64()),
                                       "ns": pa.array(ns, pa.int64()),
                                       "resolution": pa.array([resolution] * len(points), pa.string())})


def saved(tmp_path, points, failed=(), uuids=None, lo=LO, hi=HI):
    recorder = om.Recorder(lo, hi)
    recorder.add(rows(points), failed)
    path = tmp_path / "m.npz"
    recorder.save(path, uuids if uuids is not None else {"idx": "u1"})
    return path


def test_only_the_exact_ids_loaded_in_the_span_are_known(tmp_path):
    path = saved(tmp_path, [(7, 1000, 0), (7, 1060, 5), (9, 1200, 0), (7, 1700, 0)])
    known = om.recall(path, LO, HI, lambda names: {"idx": "u1"})
    query = rows([(7, 1000, 0), (7, 1060, 5), (7, 1060, 6), (9, 1200, 0), (9, 1000, 0), (8, 1000, 0), (7, 1700, 0)])
    # (7, 1700) lies outside the span asked for; ns 6 and item 8 were never loaded
    assert known.mask(query).tolist() == [True, True, False, True, False, False, False]


def test_failed_rows_and_other_resolutions_are_not_recorded(tmp_path):
    path = saved(tmp_path, [(1, 1000, 0), (2, 1000, 0)], failed=[1])
    known = om.recall(path, LO, HI, lambda names: {"idx": "u1"})
    assert known.mask(rows([(1, 1000, 0), (2, 1000, 0)])).tolist() == [True, False]
    assert known.mask(rows([(1, 1000, 0)], resolution="hour")).tolist() == [False]


def test_a_recreated_or_missing_index_voids_the_memory(tmp_path):
    path = saved(tmp_path, [(1, 1000, 0)])
    assert om.recall(path, LO, HI, lambda names: {"idx": "u2"}) is None
    assert om.recall(path, LO, HI, lambda names: {}) is None
    assert om.recall(tmp_path / "absent.npz", LO, HI, lambda names: {}) is None


def test_a_torn_file_is_ignored(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"PK\x03\x04 torn")
    assert om.recall(path, LO, HI, lambda names: {}) is None


def test_a_span_too_wide_to_pack_disables_the_memory(tmp_path):
    hi = LO + 2**62
    path = saved(tmp_path, [(1, 1000, 0), (2, 1000, 0), (3, 1000, 0)], lo=LO, hi=hi)
    assert om.recall(path, LO, hi, lambda names: {"idx": "u1"}) is None


def test_scopes_get_their_own_file(tmp_path):
    a = om.memory_path(tmp_path, "p", "zabbix", (["h1"], None))
    b = om.memory_path(tmp_path, "p", "zabbix", (["h2"], None))
    assert a != b and a.parent == tmp_path / "state"


def test_mask_at_design_scale_matches_a_set(tmp_path):
    rng = np.random.default_rng(3)
    items = rng.integers(10_000, 5_000_000, 2_000)
    loaded = [(int(i), 1000 + 60 * m, int(rng.integers(0, S))) for i in items for m in range(10)]
    path = saved(tmp_path, loaded[::2])
    known = om.recall(path, LO, HI, lambda names: {"idx": "u1"})
    truth = set(loaded[::2])
    assert known.mask(rows(loaded)).tolist() == [p in truth for p in loaded]


def typed(points, value_type):
    batch = rows(points)
    return batch.append_column("value_type", pa.array([value_type] * len(points), pa.int8()))


def test_counts_see_only_ids_of_the_tables_counted_and_settled_ids_carry_over(tmp_path):
    recorder = om.Recorder(LO, HI)
    recorder.add(typed([(7, 1000, 0), (7, 1060, 0), (9, 1200, 0)], 0), ())
    recorder.add(typed([(9, 1100, 0)], 3), ())  # item 9's history under its earlier type
    path = tmp_path / "m.npz"
    recorder.save(path, {"idx": "u1"})
    known = om.recall(path, LO, HI, lambda names: {"idx": "u1"})
    # item 7 and 9 are float now: the count of `history` sees 3 of the 4 ids
    assert (known.times_in_tables(np.array([0, 0], dtype=np.int8)) // S).tolist() == [1000, 1060, 1200]
    itemids, at, vt = known.ids(1050 * S, 1300 * S)
    assert sorted(zip(itemids.tolist(), (at // S).tolist(), vt.tolist())) == [(7, 1060, 0), (9, 1100, 3), (9, 1200, 0)]
    nxt = om.Recorder(1050 * S, 1650 * S)
    nxt.add_ids(itemids, at, vt)
    nxt.save(path, {"idx": "u1"})
    again = om.recall(path, 1050 * S, 1650 * S, lambda names: {"idx": "u1"})
    assert again.mask(rows([(7, 1060, 0), (9, 1100, 0), (7, 1000, 0)])).tolist() == [True, True, False]


def test_a_memory_written_before_value_types_were_kept_cannot_settle_counts(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as out:
        np.savez(out, itemid=np.array([1]), at=np.array([LO]), index=np.array(["idx"]), uuid=np.array(["u1"]))
    known = om.recall(path, LO, HI, lambda names: {"idx": "u1"})
    assert known.vt is None and known.mask(rows([(1, 1000, 0)])).tolist() == [True]
