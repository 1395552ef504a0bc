import dataclasses
import json

import pytest

from etl.config import Secret, Settings
from etl.errors import ConfigError
from etl.notify import notifiers_from_settings, send_new, worth_notifying
from etl.notify.base import NotifyError, markdown, text
from etl.notify.dedup import FileSentLog


def finding(fp, severity="high", rule="brute_force"):
    return {"fingerprint": fp, "job": "illegal_access", "rule": rule, "severity": severity, "source": "1.2.3.4",
            "target": "web01", "count": 42, "first_seen": "2017-03-30T15:54:00+00:00",
            "last_seen": "2017-03-30T15:58:00+00:00", "message": "42 failed logins", "evidence_ids": ["i/a", "i/b"]}


class Recorder:
    """A Notifier that keeps what it was given (the channel itself is tested in integration)."""

    def __init__(self, name="rec", fail=False):
        self.name, self.fail, self.sent = name, fail, []

    def send(self, findings):
        if self.fail:
            raise NotifyError("down")
        self.sent.append([f["fingerprint"] for f in findings])


def test_each_finding_is_sent_once_per_channel(tmp_path):
    log = FileSentLog(tmp_path / "sent.jsonl")
    a, b = Recorder("a"), Recorder("b")
    assert send_new([finding("f1"), finding("f2", "medium")], [a, b], log) == {"a": 1, "b": 1}
    assert send_new([finding("f1"), finding("f3", "critical")], [a, b], log) == {"a": 1, "b": 1}
    assert a.sent == [["f1"], ["f3"]]
    assert send_new([finding("f1"), finding("f3", "critical")], [a], log) == {"a": 0}


def test_a_failing_channel_is_retried_later_without_resending_others(tmp_path):
    log = FileSentLog(tmp_path / "sent.jsonl")
    good, bad = Recorder("good"), Recorder("bad", fail=True)
    with pytest.raises(NotifyError, match="bad: down"):
        send_new([finding("f1")], [bad, good], log)
    assert good.sent == [["f1"]]
    bad.fail = False
    assert send_new([finding("f1")], [bad, good], log) == {"bad": 1, "good": 0}


def test_severity_floor():
    found = [finding("l", "low"), finding("m", "medium"), finding("h", "high"), finding("c", "critical")]
    assert [f["fingerprint"] for f in worth_notifying(found, "high")] == ["h", "c"]
    with pytest.raises(ConfigError):
        worth_notifying(found, "urgent")


def test_wecom_markdown_stays_under_4096_bytes():
    many = [finding(f"f{i}") | {"message": "暴力破解 " * 20} for i in range(200)]
    content = markdown(many)
    assert len(content.encode("utf-8")) <= 4096
    assert "more" in content
    assert content.startswith("**[monetl] 200 high")


def test_text_names_fingerprints():
    body = text([finding("abc")])
    assert "fingerprint: abc" in body and "[HIGH] illegal_access/brute_force" in body


def test_channels_from_settings_and_secrets_hidden():
    base = Settings()
    s = dataclasses.replace(base, notify_smtp_to="ops@example.com",
                            notify_wecom_url=Secret("http://127.0.0.1:1/cgi-bin/webhook/send?key=TOPSECRET"))
    names = [n.name for n in notifiers_from_settings(s)]
    assert names == ["smtp", "wecom"]
    assert "TOPSECRET" not in repr(s) and "TOPSECRET" not in json.dumps(s.redacted())
    with pytest.raises(ConfigError):
        notifiers_from_settings(dataclasses.replace(s, notify_channels="webhook"))
    assert [n.name for n in notifiers_from_settings(dataclasses.replace(s, notify_channels="wecom"))] == ["wecom"]
