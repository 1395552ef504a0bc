"""KCMM pure parts: mapping rules, local time -> UTC, CSV parsing with bad rows, the inbox's
completeness rule and processed-file state (files on tmp_path; no database)."""

import datetime as dt
import os
import time

import pyarrow as pa
import pytest

from etl.config import Settings
from etl.quarantine import Quarantine, read
from etl.schema import point_schema
from etl.sources.kcmm_csv import KcmmCsvSource, parse_csv
from etl.sources.kcmm_mapping import KcmmMapping, kcmm_itemid, local_to_utc
from etl.sources.kcmm_sample import write_csv_export
from etl.window import Window

UTC = dt.timezone.utc
HEADER = "machine_name,display_name,branch,desk,counter_name,unit,sample_time,value,status\r\n"


def _row(counter="cpu_util_pct", t="2026-11-25 09:30:00.250", value="12.5", status="0", machine="SH-PD-TRD-001"):
    return f"{machine},上海浦东营业部 交易终端 01,上海浦东营业部,equities,{counter},%,{t},{value},{status}\r\n"


def test_itemid_is_stable_and_distinct():
    # pinned: changing the derivation would orphan every KCMM point already loaded
    assert kcmm_itemid("SH-PD-TRD-001", "order_entry_latency_ms") == 7211582790799686161
    assert kcmm_itemid("A", "cpu") != kcmm_itemid("A", "fps") != kcmm_itemid("B", "cpu")
    assert 0 <= kcmm_itemid("交易机", "延迟") < 2**63


def test_mapping_item_metadata():
    meta = KcmmMapping.load().item("SH-PD-TRD-001", "order_entry_latency_ms", "浦东 01", "ms",
                                   {"branch": "上海浦东营业部", "desk": "equities"})
    assert meta.key == "kcmm.order_entry_latency_ms" and meta.value_type == 0 and meta.units == "ms"
    assert meta.host_groups == ("KCMM", "KCMM/上海浦东营业部")
    assert meta.tags == (("category", "trading"), ("branch", "上海浦东营业部"), ("desk", "equities"))
    assert KcmmMapping.load().item("m", "client_version").value_type == 1
    unknown = KcmmMapping.load().item("m", "disk_free_pct", unit="%")
    assert unknown.value_type == 0 and unknown.units == "%" and unknown.host_groups == ("KCMM",)


def test_local_time_to_utc_keeps_milliseconds():
    clock, ns = local_to_utc(pa.array([dt.datetime(2026, 11, 25, 9, 30, 0, 250000)]), "Asia/Shanghai")
    assert clock.tolist() == [int(dt.datetime(2026, 11, 25, 1, 30, tzinfo=UTC).timestamp())]
    assert ns.tolist() == [250_000_000]


def test_dst_zone_ambiguous_hour_takes_the_earlier_instant():
    clock, _ = local_to_utc(pa.array([dt.datetime(2026, 11, 1, 1, 30)]), "America/New_York")
    assert clock.tolist() == [int(dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp())]


def test_parse_csv_takes_good_rows_and_names_each_bad_line():
    data = (HEADER + _row() + _row(value="abc") + _row(t="2026-13-45 99:00:00.000") + _row(value="", status="1")
            + _row(counter="client_version", value="V8.62.0.118") + "SH-PD-TRD-001,x,y\r\n").encode("utf-8-sig")
    data += _row(value="7").encode("gbk")[:-2] + b"\xff\r\n"
    parsed = parse_csv(data, "f.csv", KcmmMapping.load())
    assert len(parsed) == 2
    assert parsed.value[0] == 12.5 and parsed.value_text[1] == "V8.62.0.118" and parsed.value[1] is None
    reasons = {line: reason for line, reason, _ in parsed.bad}
    assert reasons[3].startswith("not a number: 'abc'")
    assert reasons[4].startswith("bad timestamp")
    assert reasons[5] == "no value (collector status 1)"
    assert reasons[7].startswith("truncated row")
    assert reasons[8] == "invalid UTF-8 in the row"
    assert parsed.ns.tolist() == [250_000_000, 250_000_000]


def test_file_missing_a_required_column_is_fatal_not_partial():
    parsed = parse_csv(b"machine_name,sample_time,value\r\nA,2026-11-25 09:30:00.000,1\r\n", "f.csv", KcmmMapping.load())
    assert parsed.fatal and "counter_name" in parsed.fatal and len(parsed) == 0


@pytest.fixture
def inbox(tmp_path):
    settings = Settings(home=tmp_path / "home", quarantine_dir=str(tmp_path / "q"), kcmm_csv_dir=str(tmp_path / "in"))
    (tmp_path / "in").mkdir()
    return settings, tmp_path / "in"


def _extract(settings, window, run_id="r", commit=True, **options):
    """One run's extraction; commit=True plays the loader acknowledging every row (phase two)."""
    src = KcmmCsvSource(settings, settle_seconds=options.pop("settle", 0), **options)
    with Quarantine(settings, "kcmm", run_id) as q:
        batches = list(src.extract(window, run_id, q))
    if commit:
        src.commit()
    else:
        src.close()
    assert all(b.schema == point_schema() for b in batches)
    return [r for b in batches for r in b.to_pylist()], q


def _window(start_local_h, end_local_h, day=25):
    # hours in Shanghai local time -> UTC window
    return Window(dt.datetime(2026, 11, day, start_local_h, tzinfo=UTC) - dt.timedelta(hours=8),
                  dt.datetime(2026, 11, day, end_local_h, tzinfo=UTC) - dt.timedelta(hours=8))


def test_half_written_files_are_skipped_until_settled_or_marked(inbox):
    settings, folder = inbox
    (folder / "a.csv").write_bytes((HEADER + _row()).encode())
    (folder / "b.csv.tmp").write_bytes((HEADER + _row(t="2026-11-25 09:31:00.000")).encode())
    window = _window(9, 10)
    points, _ = _extract(settings, window, settle=3600)
    assert points == []  # fresh mtime, no marker: maybe still being written
    (folder / "a.csv.done").touch()
    points, _ = _extract(settings, window, settle=3600)
    assert len(points) == 1  # the marker says complete; the .tmp file is never read


def test_processed_files_are_not_read_twice_and_bad_rows_quarantined_once(inbox):
    settings, folder = inbox
    (folder / "a.csv").write_bytes((HEADER + _row() + _row(value="abc")).encode())
    old = time.time() - 600
    os.utime(folder / "a.csv", (old, old))
    points, q = _extract(settings, _window(9, 10), run_id="r1")
    assert len(points) == 1 and q.count == 1
    entry = next(read(q.path))
    assert entry["ref"].endswith("a.csv:3") and entry["reason"].startswith("not a number")
    points, q2 = _extract(settings, _window(9, 10), run_id="r2")
    assert points == [] and q2.count == 0


def test_rows_after_the_window_wait_for_the_next_window_and_late_rows_are_not_lost(inbox):
    settings, folder = inbox
    rows = [_row(t="2026-11-25 08:59:00.000"), _row(t="2026-11-25 09:15:00.000"), _row(t="2026-11-25 10:05:00.000")]
    (folder / "a.csv").write_bytes((HEADER + "".join(rows)).encode())
    os.utime(folder / "a.csv", (time.time() - 600,) * 2)
    first, _ = _extract(settings, _window(9, 10))
    # 08:59 is before the window but was never emitted: taken now (late data); 10:05 waits.
    assert sorted(p["clock"] for p in first) == [
        int(dt.datetime(2026, 11, 25, 0, 59, tzinfo=UTC).timestamp()),
        int(dt.datetime(2026, 11, 25, 1, 15, tzinfo=UTC).timestamp())]
    second, _ = _extract(settings, _window(10, 11))
    assert [p["clock"] for p in second] == [int(dt.datetime(2026, 11, 25, 2, 5, tzinfo=UTC).timestamp())]
    third, _ = _extract(settings, _window(10, 11))
    assert third == []


def test_a_changed_file_with_the_same_name_is_read_again(inbox):
    settings, folder = inbox
    path = folder / "a.csv"
    path.write_bytes((HEADER + _row()).encode())
    os.utime(path, (time.time() - 600,) * 2)
    assert len(_extract(settings, _window(9, 10))[0]) == 1
    path.write_bytes((HEADER + _row() + _row(t="2026-11-25 09:45:00.000")).encode())
    os.utime(path, (time.time() - 600,) * 2)
    assert len(_extract(settings, _window(9, 10))[0]) == 2  # new sha256: a new file; ids make it idempotent


def test_generator_exports_round_trip_with_bad_rows(inbox):
    settings, folder = inbox
    start = dt.datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    path = write_csv_export(folder, start, start + dt.timedelta(minutes=30), machine_count=2, bad_rows=5,
                            done_marker=True)
    parsed = parse_csv(path.read_bytes(), path.name, KcmmMapping.load())
    assert len(parsed.bad) == 5 and len({r for _, r, _ in parsed.bad}) == 5
    points, q = _extract(settings, Window(start, start + dt.timedelta(minutes=30)), settle=3600)
    assert len(points) == len(parsed) > 500 and q.count == 5
    assert {p["host"] for p in points} == {"SH-PD-TRD-001", "SH-XH-TRD-001"}


def test_count_buckets_rows_in_complete_files(inbox):
    settings, folder = inbox
    (folder / "a.csv").write_bytes((HEADER + _row(t="2026-11-25 09:10:00.000") + _row(t="2026-11-25 10:10:00.000")).encode())
    os.utime(folder / "a.csv", (time.time() - 600,) * 2)
    counts = KcmmCsvSource(settings).count(_window(9, 11), dt.timedelta(hours=1))
    assert list(counts.values()) == [1, 1]


def test_installation_specific_time_format_from_the_mapping():
    base = KcmmMapping.load()
    mapping = KcmmMapping({**base.raw, "csv": {**base.csv, "time_format": "%Y/%m/%d %H:%M:%S"}})
    parsed = parse_csv((HEADER + _row(t="2026/11/25 09:30:00")).encode(), "f.csv", mapping)
    assert parsed.bad == [] and parsed.clock.tolist() == [int(dt.datetime(2026, 11, 25, 1, 30, tzinfo=UTC).timestamp())]
    offset = parse_csv((HEADER + _row(t="2026-11-25T09:30:00+08:00")).encode(), "f.csv", base)
    assert "UTC offset" in offset.bad[0][1]


def test_sample_failures_are_the_same_when_an_overlapping_range_is_generated_again():
    """Re-seeding the KCMM sample must fail the same samples, or points loaded earlier would stay
    in Elasticsearch next to a source that no longer has them."""
    import datetime as dt

    import numpy as np

    from etl.sources.kcmm_sample import machines, samples

    utc = dt.timezone.utc
    start = dt.datetime(2026, 11, 25, tzinfo=utc)
    fleet = machines(3)

    def failed(end):
        cols = samples(start, end, fleet)
        status = np.array(cols["status"])
        keys = zip(cols["machine_id"], cols["counter_id"], cols["sample_time"])
        return {k for k, s in zip(keys, status) if s == 1}, cols

    short, _ = failed(start + dt.timedelta(hours=10))
    longer, cols = failed(start + dt.timedelta(hours=13))
    cut = (start + dt.timedelta(hours=10)).astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
    assert short and short == {k for k in longer if k[2] < cut}
    assert all(np.isnan(v) for v, s in zip(cols["value"], cols["status"]) if s == 1)


def test_count_takes_a_sample_exported_twice_once(inbox):
    """gaps compares like with like: the store keeps one point per (machine, counter, time)."""
    settings, folder = inbox
    row = _row(t="2026-11-25 09:10:00.000")
    (folder / "a.csv").write_bytes((HEADER + row + row + _row(t="2026-11-25 09:20:00.000")).encode())
    (folder / "b.csv").write_bytes((HEADER + row).encode())
    for name in ("a.csv", "b.csv"):
        os.utime(folder / name, (time.time() - 600,) * 2)
    counts = KcmmCsvSource(settings).count(_window(9, 10), dt.timedelta(hours=1))
    assert list(counts.values()) == [2]
    rows, _ = _extract(settings, _window(9, 10))
    assert len({(r["itemid"], r["clock"], r["ns"]) for r in rows}) == 2


def _old_file(folder, name, rows):
    path = folder / name
    path.write_bytes((HEADER + "".join(rows)).encode())
    os.utime(path, (time.time() - 600,) * 2)
    return path


def test_rows_extracted_but_not_committed_are_read_again(inbox):
    # An Elasticsearch error or a kill after extraction: the loader never calls commit().
    settings, folder = inbox
    _old_file(folder, "a.csv", [_row(), _row(t="2026-11-25 09:31:00.000")])
    first, _ = _extract(settings, _window(9, 10), commit=False)
    assert len(first) == 2
    again, _ = _extract(settings, _window(9, 10))
    assert sorted(p["clock"] for p in again) == sorted(p["clock"] for p in first)
    assert _extract(settings, _window(9, 10))[0] == []  # committed now: never a third time


def test_a_host_run_leaves_other_machines_rows_for_a_later_run(inbox):
    settings, folder = inbox
    _old_file(folder, "a.csv", [_row(machine="SH-PD-TRD-001"), _row(machine="SH-PD-TRD-002"),
                                _row(machine="SH-PD-TRD-001", t="2026-11-25 10:20:00.000")])
    mine, _ = _extract(settings, _window(9, 10), hosts=["SH-PD-TRD-001"])
    assert {p["host"] for p in mine} == {"SH-PD-TRD-001"} and len(mine) == 1
    assert _extract(settings, _window(9, 10), hosts=["SH-PD-TRD-001"])[0] == []
    rest, _ = _extract(settings, _window(9, 10))
    assert [p["host"] for p in rest] == ["SH-PD-TRD-002"]  # not marked consumed by the --host run
    later, _ = _extract(settings, _window(10, 11))
    assert [(p["host"], p["clock"]) for p in later] == [
        ("SH-PD-TRD-001", int(dt.datetime(2026, 11, 25, 2, 20, tzinfo=UTC).timestamp()))]
    assert _extract(settings, _window(10, 12))[0] == []


def test_a_host_run_ahead_of_the_fleet_is_not_read_twice(inbox):
    settings, folder = inbox
    _old_file(folder, "a.csv", [_row(machine="SH-PD-TRD-001"), _row(machine="SH-PD-TRD-002")])
    assert len(_extract(settings, _window(9, 11), hosts=["SH-PD-TRD-002"])[0]) == 1
    rest, _ = _extract(settings, _window(9, 10))
    assert [p["host"] for p in rest] == ["SH-PD-TRD-001"]
    assert _extract(settings, _window(9, 12))[0] == []


def test_the_inbox_lock_is_held_until_commit_or_abandon(inbox):
    import fcntl

    settings, folder = inbox
    _old_file(folder, "a.csv", [_row()])
    src = KcmmCsvSource(settings, settle_seconds=0)
    with Quarantine(settings, "kcmm", "r") as q:
        list(src.extract(_window(9, 10), "r", q))

    def free() -> bool:
        with open(str(src.state_path) + ".lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True

    assert not free()
    src.abandon()
    assert free() and not src.state_path.exists()
