from etl import quarantine
from etl.config import Settings


def test_bad_records_are_written_with_reason_and_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("MONETL_QUARANTINE_DIR", str(tmp_path))
    with quarantine.Quarantine(Settings(), "zabbix", "run/1") as q:
        q.add({"itemid": 1, "value": "abc"}, "not a number: 'abc'", ref="item 1 @ 1700000000", stage="validate")
        q.add({"line": b"\xff\xfe"}, "invalid UTF-8", ref="auth.log:7")
    assert q.count == 2 and q.path.name == "run_1.jsonl"
    entries = list(quarantine.read(tmp_path))
    assert [e["reason"] for e in entries] == ["not a number: 'abc'", "invalid UTF-8"]
    assert entries[0]["record"] == {"itemid": 1, "value": "abc"}


def test_nothing_quarantined_leaves_no_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MONETL_QUARANTINE_DIR", str(tmp_path))
    with quarantine.Quarantine(Settings(), "kcmm", "r") as q:
        pass
    assert not q.path.exists()


# --- keyed, whole-line, private, redacted (issues 9 and 10) -----------------------------------------

import datetime as dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

import pytest  # noqa: E402

from etl.window import Window  # noqa: E402


@pytest.fixture
def qsettings(monkeypatch, tmp_path):
    monkeypatch.setenv("MONETL_QUARANTINE_DIR", str(tmp_path / "q"))
    return Settings()


def _point(clock=1_795_564_860, ns=5, host="web01", **extra):
    return {"source": "zabbix", "host": host, "key": "k", "itemid": 7, "clock": clock, "ns": ns,
            "resolution": "raw", "value_type": 0, "value": float("nan"), **extra}


def _lines(path):
    return path.read_bytes().decode().splitlines()


def test_a_window_re_run_eight_times_keeps_one_line_per_point_and_reason(qsettings):
    for _ in range(8):
        with quarantine.Quarantine(qsettings, "points", "zabbix:w") as q:
            for ns in range(9):
                q.add(_point(ns=ns), "numeric value not finite: nan", ref=f"p{ns}", stage="validate")
            q.add(_point(ns=0), "another reason", stage="validate")  # a second reason is a second record
    assert q.count == 10  # what this run saw
    lines = _lines(q.path)
    assert len(lines) == 10
    keys = [json.loads(line)["key"] for line in lines]
    assert len(set(keys)) == 10
    assert keys[0] == "zabbix:7:1795564860:0:validate:numeric value not finite: nan"


def test_files_are_private(qsettings):
    with quarantine.Quarantine(qsettings, "points", "r") as q:
        q.add(_point(), "bad", stage="validate")
    assert stat.S_IMODE(q.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(q.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(q.path.parent.parent.stat().st_mode) == 0o700


def test_an_existing_loose_file_is_tightened(qsettings):
    with quarantine.Quarantine(qsettings, "points", "r") as q:
        q.add(_point(), "bad", stage="validate")
    os.chmod(q.path, 0o644)
    os.chmod(q.path.parent, 0o755)
    with quarantine.Quarantine(qsettings, "points", "r") as q:
        q.add(_point(ns=99), "bad", stage="validate")
    assert stat.S_IMODE(q.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(q.path.parent.stat().st_mode) == 0o700


def test_torn_last_line_is_skipped_by_readers_and_cut_off_before_the_next_write(qsettings):
    with quarantine.Quarantine(qsettings, "points", "r") as q:
        q.add(_point(ns=1), "bad", stage="validate")
        q.add(_point(ns=2), "bad", stage="validate")
    whole = q.path.read_bytes()
    q.path.write_bytes(whole[:-20])  # what a kill -9 in the middle of the second write leaves
    problems: list[str] = []
    entries = list(quarantine.read(q.path, problems))
    assert [e["record"]["ns"] for e in entries] == [1]
    assert len(problems) == 1 and "torn last line" in problems[0]
    with quarantine.Quarantine(qsettings, "points", "r") as q:
        q.add(_point(ns=2), "bad", stage="validate")  # the re-run quarantines it again
        q.add(_point(ns=3), "bad", stage="validate")
    lines = _lines(q.path)
    assert [json.loads(line)["record"]["ns"] for line in lines] == [1, 2, 3]
    assert q.path.read_bytes().endswith(b"\n")


def test_a_legacy_file_with_repeats_is_rewritten_once(qsettings):
    path = quarantine.Quarantine(qsettings, "points", "old").path
    path.parent.mkdir(parents=True)
    legacy = {"area": "points", "run_id": "old", "ref": "x", "reason": "bad", "stage": "validate", "record": _point()}
    path.write_text("\n".join(json.dumps(legacy) for _ in range(8)) + "\n")
    with quarantine.Quarantine(qsettings, "points", "old") as q:
        q.add(_point(), "bad", ref="x", stage="validate")
    assert len(_lines(path)) == 1 and q.written == 0


def test_raw_lines_and_reasons_are_redacted(qsettings):
    raw = ("Nov 25 10:00:00 mx dovecot: auth: Debug: pam(bob,10.0.0.1): (given password: hunter2) "
           "GET /login?user=bob&password=s3cret HTTP/1.1 Authorization: Bearer abc.def https://ops:pw1@h/x")
    with quarantine.Quarantine(qsettings, "logs-dovecot", "r") as q:
        q.add({"file": "mail.log", "line": 3, "raw": raw}, "unparseable: password=s3cret", ref="mail.log:3",
              stage="parse")
    text = q.path.read_text()
    for secret in ("hunter2", "s3cret", "abc.def", "pw1"):
        assert secret not in text
    (entry,) = quarantine.read(q.path)
    assert "(given password: ***)" in entry["record"]["raw"] and "password=***" in entry["record"]["raw"]
    assert entry["key"] == "mail.log:3:parse:unparseable: password=***"


def test_replay_ledger_round_trip(qsettings):
    assert quarantine.replayed(qsettings, "points") == set()
    record = _point()
    marker = ("k1", quarantine.record_hash(record))
    assert quarantine.mark_replayed(qsettings, "points", [marker], "replay:x") == 1
    assert quarantine.replayed(qsettings, "points") == {marker}
    # an edited record is a different record
    assert ("k1", quarantine.record_hash({**record, "value": 1.0})) not in quarantine.replayed(qsettings, "points")
    ledger = next((qsettings.quarantine_dir and __import__("pathlib").Path(qsettings.quarantine_dir)).rglob("*.tsv"))
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    # the ledger is not a quarantine file: reading the whole folder does not see it
    assert list(quarantine.read(qsettings.quarantine_dir)) == []


def test_quarantined_points_by_window_source_and_host(qsettings):
    t0 = 1_795_564_800
    with quarantine.Quarantine(qsettings, "points", "a") as q:
        q.add(_point(clock=t0 + 10), "numeric value not finite: nan", stage="validate")
        q.add(_point(clock=t0 + 10), "numeric value not finite: nan", stage="validate")
        q.add(_point(clock=t0 + 20, host="db01"), "not a number: 'x'", stage="extract")
        q.add(_point(clock=t0 + 7200), "late", stage="validate")                  # outside the window
        q.add({**_point(clock=t0 + 30), "source": "kcmm"}, "bad", stage="validate")  # other source
    with quarantine.Quarantine(qsettings, "points", "b") as q:  # the same point in an overlapping run
        q.add(_point(clock=t0 + 10), "numeric value not finite: nan", stage="validate")
    window = Window(dt.datetime.fromtimestamp(t0, dt.timezone.utc), dt.datetime.fromtimestamp(t0 + 3600, dt.timezone.utc))
    found = quarantine.quarantined_points(qsettings, "zabbix", window)
    assert found == {(7, t0 + 10, 5, "raw"): {("validate", "numeric value not finite")},
                     (7, t0 + 20, 5, "raw"): {("extract", "not a number")}}
    assert list(quarantine.quarantined_points(qsettings, "zabbix", window, hosts=["db01"])) == [(7, t0 + 20, 5, "raw")]
