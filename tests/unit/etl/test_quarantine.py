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
