import datetime as dt
from zoneinfo import ZoneInfo

from etl.logs.jobs.common import load_rules
from etl.logs.jobs.illegal_access import actions_filter, auth_datasets, is_business_hour, peak_within


def test_peak_within_adds_adjacent_half_buckets():
    half = 300_000
    buckets = [{"key": 0, "doc_count": 2}, {"key": half, "doc_count": 3}, {"key": 3 * half, "doc_count": 4}]
    assert peak_within(buckets, half) == 5
    assert peak_within([], half) == 0


def test_business_hours_in_shanghai():
    rule = load_rules()["illegal_access"]["privileged_offhours"]
    zone = ZoneInfo(rule["time_zone"])
    # 2017-03-30 is a Thursday: 10:00 Shanghai is business, 03:00 is not; Saturday never is.
    assert is_business_hour(dt.datetime(2017, 3, 30, 10, tzinfo=zone), rule)
    assert not is_business_hour(dt.datetime(2017, 3, 30, 3, tzinfo=zone), rule)
    assert not is_business_hour(dt.datetime(2017, 4, 1, 10, tzinfo=zone), rule)
    # 15:54 UTC is 23:54 in Shanghai.
    assert not is_business_hour(dt.datetime(2017, 3, 30, 15, 54, tzinfo=dt.timezone.utc).astimezone(zone), rule)


def test_actions_filter_counts_one_line_per_attempt():
    q = actions_filter({"sshd": ["failed_*"], "windows.security": ["logon_failed"]}, "failure",
                       {"sshd": ["invalid_user"]})
    outer = q["bool"]["filter"]
    assert outer[0] == {"term": {"event.outcome": "failure"}}
    per_dataset = outer[1]["bool"]["should"]
    sshd = next(c for c in per_dataset if {"term": {"event.dataset": "sshd"}} in c["bool"]["filter"])
    clauses = sshd["bool"]["filter"][1]["bool"]["should"]
    assert {"prefix": {"event.action": "failed_"}} in clauses
    assert {"term": {"event.action": "invalid_user"}} in clauses


def test_auth_datasets_come_from_rules():
    cfg = load_rules()["illegal_access"]
    assert {"sshd", "windows.security"} <= set(auth_datasets(cfg))
