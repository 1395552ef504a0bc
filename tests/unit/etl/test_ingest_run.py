"""The ingest orchestration with an in-memory source and a recording stand-in for the bulk call
(the Elasticsearch boundary; the real thing is exercised in tests/integration/test_ingest_*.py):
counts per value type, quarantine stages and reasons, overlap, run ids, gap merging, replay input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from etl import ingest, quarantine
from etl.commands.ingest import duration
from etl.search import load
from etl.window import Window

from points_factory import batch, point, with_invalid_utf8

UTC = dt.timezone.utc
WINDOW = Window(dt.datetime(2026, 11, 25, 0, 0, tzinfo=UTC), dt.datetime(2026, 11, 25, 0, 5, tzinfo=UTC))


class MemorySource:
    name, mode = "zabbix", "memory"

    def __init__(self, batches, source_bad=0, fail_after=None):
        self.batches, self.source_bad, self.fail_after = batches, source_bad, fail_after
        self.asked = None

    def extract(self, window, run_id, q):
        self.asked = window
        for i in range(self.source_bad):
            q.add({"raw": f"line {i}"}, "unparsable row: x", stage="extract")
        for i, b in enumerate(self.batches):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("source went away")
            yield b

    def count(self, window, bucket):
        return {}


class Indices:
    def put_index_template(self, **kwargs):
        self.template = kwargs

    def refresh(self, **kwargs):
        self.refreshed = kwargs["index"]


class Client:
    def __init__(self):
        self.indices = Indices()


@pytest.fixture
def loaded(monkeypatch):
    """Records what would be sent; refuses the documents whose itemid is 666 (like a mapping clash)."""
    sent = []

    def fake_bulk(client, docs, on_chunk=None, chunk_docs=None, **kwargs):
        result = load.LoadResult()
        for row, source in enumerate(docs.sources):
            doc = json.loads(source)
            if doc["itemid"] == 666:
                result.failed[row] = "elasticsearch rejected the document: HTTP 400 mapper_parsing_exception: x"
            else:
                result.loaded += 1
                sent.append((docs.ids[row], docs.indices[row], doc))
        return result

    monkeypatch.setattr(load, "bulk", fake_bulk)
    return sent


@pytest.fixture
def cfg(settings, tmp_path):
    return dataclasses.replace(settings, es_index_prefix="unit", quarantine_dir=str(tmp_path))


def test_counts_per_type_and_quarantine_stages(cfg, loaded):
    rows = [point(itemid=1), point(itemid=2, value_type=3, value=4.0, value_uint=4), point(itemid=3, value=float("nan")),
            point(itemid=666), point(itemid=5, value_type=4, value=None, value_text="fine")]
    source = MemorySource([with_invalid_utf8(batch(rows), row=4)], source_bad=2)
    summary = ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False)
    assert summary.read == {"float": 3, "uint": 1, "text": 1}
    assert summary.loaded == {"float": 1, "uint": 1}
    assert summary.quarantined == {"float": 2, "text": 1}
    assert summary.quarantined_at_source == 2 and summary.load_failures == 1 and not summary.ok
    entries = list(quarantine.read(summary.quarantine_path))
    stages = sorted((e["stage"], e["reason"].split(":")[0]) for e in entries)
    assert stages == [("extract", "unparsable row"), ("extract", "unparsable row"),
                      ("load", "elasticsearch rejected the document"),
                      ("validate", "invalid UTF-8"), ("validate", "numeric value not finite (NaN or infinity)")]
    assert {e["run_id"] for e in entries} == {"zabbix:2026-11-25T00:00:00Z/2026-11-25T00:05:00Z"}
    assert sorted(doc["itemid"] for _, _, doc in loaded) == [1, 2]
    assert summary.to_dict()["points_quarantined"] == 5


def test_overlap_widens_extraction_backwards_only(cfg, loaded):
    source = MemorySource([batch([point()])])
    summary = ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False)
    assert source.asked == Window(WINDOW.start - dt.timedelta(minutes=10), WINDOW.end)
    assert summary.run_id == "zabbix:2026-11-25T00:00:00Z/2026-11-25T00:05:00Z"
    ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False, overlap=dt.timedelta(0))
    assert source.asked == WINDOW


def test_large_batches_are_loaded_in_bounded_units(cfg, loaded, monkeypatch):
    monkeypatch.setattr(ingest, "WORK_ROWS", 7)
    sizes = []
    real_documents = load.documents
    monkeypatch.setattr(load, "documents", lambda b, prefix: sizes.append(b.num_rows) or real_documents(b, prefix))
    rows = [point(itemid=i, ns=i) for i in range(20)]
    summary = ingest.run(cfg, MemorySource([batch(rows)]), WINDOW, client=Client(), use_ge=False)
    assert sizes == [7, 7, 6] and summary.points_loaded == 20
    assert len({doc_id for doc_id, _, _ in loaded}) == 20


def test_a_failing_source_fails_the_run_after_loading_what_came_before(cfg, loaded):
    source = MemorySource([batch([point(itemid=1)]), batch([point(itemid=2)])], fail_after=1)
    with pytest.raises(RuntimeError, match="source went away"):
        ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False)
    assert [doc["itemid"] for _, _, doc in loaded] == [1]


def test_gap_buckets_merge_into_windows_clipped_to_the_request():
    hour = dt.timedelta(hours=1)
    t = WINDOW.start
    buckets = [ingest.Bucket(t + i * hour, t + (i + 1) * hour, 10, 0) for i in (0, 1, 3)]
    asked = Window(t + dt.timedelta(minutes=30), t + 4 * hour)
    assert ingest._merge(buckets, asked) == [Window(asked.start, t + 2 * hour), Window(t + 3 * hour, t + 4 * hour)]
    assert [ingest.Bucket(t, t + hour, 5, 3).status, ingest.Bucket(t, t + hour, 5, 0).status,
            ingest.Bucket(t, t + hour, 5, 5).status, ingest.Bucket(t, t + hour, 5, 6).status] == \
        ["short", "missing", "ok", "extra"]


def test_replay_input_keeps_points_and_rejects_other_records():
    good = point(itemid=9)
    good_json = json.loads(json.dumps(good))
    records = [good_json, {"raw": "a log line"}, "text", dict(good_json, clock="soon")]
    converted, unusable = ingest._to_batch(records, "replay:x")
    assert converted.num_rows == 1 and converted.column("run_id").to_pylist() == ["replay:x"]
    assert converted.column("tags").to_pylist() == [good["tags"]]
    assert [reason.split(":")[0] for _, reason in unusable] == ["not a point record"] * 3


def test_duration_argument():
    assert duration("10m") == dt.timedelta(minutes=10) and duration("1h") == dt.timedelta(hours=1)
    assert duration("0m") == dt.timedelta(0)
    with pytest.raises(Exception):
        duration("ten minutes")


def test_plain_progress_is_logged_at_info_not_written_to_stderr(capsys, caplog):
    # Airflow 3 records a task's stderr at ERROR level: progress must not look like a failure.
    import logging

    with caplog.at_level(logging.INFO, logger="etl.ingest"):
        meter = ingest.Progress("plain", "ingest zabbix/api")
        meter.update(read=10, loaded=10)
        meter.close()
    assert capsys.readouterr().err == ""
    lines = [r for r in caplog.records if r.name == "etl.ingest"]
    assert lines and all(r.levelno == logging.INFO for r in lines)
    assert "done, read 10 loaded 10" in lines[-1].getMessage()


def test_a_batch_that_ends_early_frees_its_slot_for_the_next(cfg, monkeypatch):
    """Two batches in flight: while the first is slow, the short second one ends and the third must
    start at once (not wait for the first); results are still accounted in batch order, and a batch
    that fails stops the run with nothing before it left running."""
    import threading

    cfg = dataclasses.replace(cfg, es_bulk_in_flight=2)
    third_started, order, lock = threading.Event(), [], threading.Lock()

    def fake_bulk(client, docs, **kwargs):
        itemid = json.loads(docs.sources[0])["itemid"]
        with lock:
            order.append(("start", itemid))
        if itemid == 1:
            waited = third_started.wait(timeout=5)
            with lock:
                order.append(("first saw the third start", waited))
        if itemid == 3:
            third_started.set()
        if itemid == 4:
            raise RuntimeError("node went away")
        with lock:
            order.append(("end", itemid))
        return load.LoadResult(loaded=len(docs.ids))

    monkeypatch.setattr(load, "bulk", fake_bulk)
    source = MemorySource([batch([point(itemid=i)]) for i in (1, 2, 3)])
    summary = ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False)
    assert ("first saw the third start", True) in order
    assert order.index(("start", 3)) < order.index(("end", 1))
    assert summary.points_loaded == 3 and summary.loaded == {"float": 3}

    third_started.clear()
    order.clear()
    source = MemorySource([batch([point(itemid=i)]) for i in (1, 2, 3, 4, 5)])
    with pytest.raises(RuntimeError, match="node went away"):
        ingest.run(cfg, source, WINDOW, client=Client(), use_ge=False)
    # nothing is left running behind the caller: every batch before the refused one was answered
    assert {("end", 1), ("end", 2), ("end", 3)} <= set(order)
