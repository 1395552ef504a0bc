"""Findings keyed and dated by event time: per-minute counts make re-runs over any windows
converge, the look-back attribution reports a finding once, the settle wait, continuation of a
stored finding across midnight (a fake findings index: the logic only)."""

from __future__ import annotations

import datetime as dt

from etl.logs import findings as store
from etl.logs.jobs import settle
from etl.logs.jobs.common import Finding, attributed, look_back
from etl.window import UTC, Window


def at(h, m=0, day=30):
    return dt.datetime(2017, 3, day, h, m, tzinfo=UTC)


def burst(window, minutes: dict, covered=None):
    first = min(dt.datetime.strptime(k, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC) for k in minutes)
    last = max(dt.datetime.strptime(k, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC) for k in minutes)
    return Finding("illegal_access", "brute_force", "medium", "192.0.2.7", "h", sum(minutes.values()), window,
                   first_seen=first, last_seen=last, minutes=minutes, covered=covered or window)


MINUTES = {"2017-03-30T23:58Z": 3, "2017-03-30T23:59Z": 4, "2017-03-31T00:00Z": 5, "2017-03-31T00:01Z": 2}


def _part(window):
    return {k: v for k, v in MINUTES.items()
            if window.contains(dt.datetime.strptime(k, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC))}


def test_any_windows_over_the_same_events_converge_to_one_count():
    day1 = Window(at(0), at(0, day=31))
    day2 = Window(at(0, day=31), at(0, day=31) + dt.timedelta(days=1))
    shifted = Window(at(12), at(12, day=31))
    quarter = Window(at(23, 45), at(0, day=31) + dt.timedelta(minutes=15))
    for order in ([day1, day2], [shifted, day2, quarter, day1], [quarter, quarter, day2, day1, shifted]):
        stored = None
        for w in order:
            part = _part(w)
            if part:
                stored = store.merge(stored, burst(w, part).to_doc(), "now")
        assert stored["count"] == sum(MINUTES.values()), order
        assert stored["minute_counts"] == MINUTES


def test_finding_is_dated_by_its_first_event_not_the_window():
    w = Window(at(12), at(12, day=31))
    f = burst(w, _part(Window(at(23, 59), at(0, 2, day=31))))
    assert f.day == dt.date(2017, 3, 30) and f.to_doc()["day"] == "2017-03-30"
    later = burst(Window(at(23), at(23, 59)), {"2017-03-30T23:59Z": 1})
    assert later.fingerprint == burst(w, {"2017-03-30T23:59Z": 1}).fingerprint  # window start is irrelevant


def test_look_back_and_single_attribution():
    rule = {"within_minutes": 10}
    w = Window(at(10), at(10, 15))
    assert look_back(w, rule).start == at(9, 50)
    previous = burst(w, {"2017-03-30T09:55Z": 6})  # all its events before the window: already reported
    current = burst(w, {"2017-03-30T09:58Z": 3, "2017-03-30T10:01Z": 3})  # split by the edge: reported now
    assert not attributed(previous, w) and attributed(current, w)


def test_settle_waits_only_for_a_window_that_just_ended():
    w = Window(at(10), at(10, 15))
    slept = []
    assert settle(w, 120, now=at(10, 15) + dt.timedelta(seconds=30), sleep=slept.append) == 90
    assert slept == [90]
    assert settle(w, 120, now=at(11), sleep=slept.append) == 0 and slept == [90]
    import pendulum  # what Airflow's data interval is made of

    airflow_window = Window(pendulum.datetime(2017, 3, 30, 10), pendulum.datetime(2017, 3, 30, 10, 15))
    assert settle(airflow_window, 120, now=at(10, 16), sleep=slept.append) == 60


class FakeEs:
    def __init__(self, hits):
        self.hits = hits

    def search(self, **kw):
        keys = kw["query"]["bool"]["filter"][0]["terms"]["key"]
        return {"hits": {"hits": [h for h in self.hits if h["_source"]["key"] in keys]}}


def test_a_finding_continuing_past_midnight_keeps_the_stored_id():
    before = burst(Window(at(23, 45), at(0, day=31)), {"2017-03-30T23:58Z": 7})
    after = burst(Window(at(0, day=31), at(0, 15, day=31)), {"2017-03-31T00:03Z": 5})
    after.span = dt.timedelta(minutes=10)
    assert after.fingerprint != before.fingerprint
    doc = before.to_doc()
    es = FakeEs([{"_id": before.fingerprint, "_source": {"key": doc["key"], "first_seen": doc["first_seen"],
                                                         "last_seen": doc["last_seen"]}}])
    store.continuations(es, "x", [after])
    assert after.fingerprint == before.fingerprint
    far = burst(Window(at(5, day=31), at(6, day=31)), {"2017-03-31T05:30Z": 5})
    far.span = dt.timedelta(minutes=10)
    store.continuations(es, "x", [far])
    assert far.fingerprint != before.fingerprint  # hours later: a new incident
