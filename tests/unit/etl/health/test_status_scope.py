"""`monetl status` measures without pushing (only --push sends), and its gap check is scoped to the
hosts monetl ingests (points in Elasticsearch), not every host the Zabbix holds. The source and
Elasticsearch are faked here; the gap function keeps its real @reports("gaps") decorator, so a
caller that goes through it pushes exactly as in production."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from etl import ingest
from etl.config import Settings
from etl.health import push, status
from etl.health.push import reports
from etl.ingest import Bucket, GapReport

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 10, 30, tzinfo=UTC).timestamp()
INGESTED = ["trading-01", "web-01"]


class FakeEs:
    """Answers the composite host aggregation from per-source host lists as Elasticsearch pages it:
    at most the composite's `size` buckets after its `after` key, after_key on every non-empty page."""

    def __init__(self, hosts: dict[str, list[str]]):
        self.hosts, self.searches, self.afters = hosts, [], []

    def search(self, index, aggs=None, query=None, **kw):
        self.searches.append((index, query))
        source = index.split("-points-")[1].rstrip("-*")
        names = sorted(self.hosts.get(source, []))
        (name, agg), = aggs.items()
        composite = agg["composite"]
        (field, _), = (next(iter(s.items())) for s in composite["sources"])
        after = (composite.get("after") or {}).get(field)
        self.afters.append(after)
        rest = [h for h in names if after is None or h > after][: composite["size"]]
        out = {"buckets": [{"key": {field: h}, "doc_count": 1} for h in rest]}
        if rest:
            out["after_key"] = {field: rest[-1]}
        return {"aggregations": {name: out}}


@pytest.fixture
def world(monkeypatch, tmp_path):
    """The gap function with its real decorator over a fake count; pushes and gap calls recorded."""
    pushed, calls = [], []
    monkeypatch.setattr(push, "push", lambda settings, values, **kw: pushed.append(dict(values)))

    @reports("gaps")
    def fake_gaps(settings, source, window, bucket=dt.timedelta(hours=1), mode=None, client=None, hosts=None, **kw):
        calls.append((source, None if hosts is None else list(hosts)))
        short = Bucket(window.start, window.start + dt.timedelta(hours=1), source_count=10, es_count=7)
        full = Bucket(window.start + dt.timedelta(hours=1), window.end, source_count=5, es_count=5)
        return GapReport(source, window, bucket, [short, full], hosts=hosts)

    monkeypatch.setattr(ingest, "gaps", fake_gaps)
    # The other checks read real stores: out of this test's scope.
    for name in ("check_ingest", "check_lake"):
        monkeypatch.setattr(status, name, lambda settings, es, source, *a, _n=name: status.Check(f"{_n} {source}", "OK", ""))
    monkeypatch.setattr(status, "check_quarantine", lambda settings: status.Check("quarantine", "OK", ""))
    monkeypatch.setattr(status, "check_extracts", lambda settings, now: status.Check("extracts", "OK", ""))
    monkeypatch.setattr(status, "check_log_job", lambda settings, job, now, es=None: status.Check(job, "OK", ""))
    settings = Settings(home=tmp_path, es_index_prefix="unit", quarantine_dir=str(tmp_path / "q"),
                        extracts_dir=str(tmp_path / "x"), health_push=True)
    return settings, pushed, calls


def test_collecting_the_status_pushes_nothing_but_carries_the_gap_figures(world):
    settings, pushed, calls = world
    current = status.collect(settings, es=FakeEs({"zabbix": INGESTED}), now=NOW, sources=("zabbix",))
    assert calls and pushed == []  # measuring is not reporting
    gap = next(c for c in current.checks if c.name == "gaps zabbix")
    assert gap.figures["monetl.gaps.open[zabbix]"] == 1
    assert current.figures()["monetl.gaps.open[zabbix]"] == 1  # what --push / health push send


def test_status_cli_pushes_only_with_push(world, monkeypatch, capsys):
    from etl.commands import health as command

    settings, pushed, _ = world
    monkeypatch.setattr("etl.config.load", lambda: settings)
    monkeypatch.setattr("etl.search.client.es_client", lambda s: FakeEs({"zabbix": INGESTED, "kcmm": ["desk-01"]}))
    args = argparse.Namespace(json=False, gaps_hours=3, push=False, hosts=None, all_hosts=False)
    command._status(args)
    assert pushed == []
    command._status(argparse.Namespace(**{**vars(args), "push": True}))
    assert len(pushed) == 1 and pushed[0]["monetl.gaps.open[zabbix]"] == 1 and "monetl.status.fail" in pushed[0]
    assert "gaps zabbix" in capsys.readouterr().out


def test_unscoped_gap_check_counts_the_hosts_monetl_ingests(world, monkeypatch):
    settings, _, calls = world
    monkeypatch.setattr(status, "HOST_PAGE", 2)
    es = FakeEs({"zabbix": INGESTED, "kcmm": ["desk-01", "desk-02", "desk-03"]})
    status.collect(settings, es=es, now=NOW)
    # Paged: 3 desktops in pages of 2; "Zabbix server" and test hosts never reach the comparison.
    assert calls == [("zabbix", INGESTED), ("kcmm", ["desk-01", "desk-02", "desk-03"])]
    # zabbix: a full page of 2 then an empty one; kcmm: a full page then the short last one.
    assert [i for i, _ in es.searches] == ["unit-points-zabbix-*"] * 2 + ["unit-points-kcmm-*"] * 2
    assert es.afters == [None, "web-01", None, "desk-02"]
    index, query = es.searches[0]
    assert index == "unit-points-zabbix-*"
    assert query["range"]["clock"]["gte"] == int(NOW) - status.SCOPE_HOURS * 3600


def test_explicit_hosts_and_all_hosts_override_the_default_scope(world):
    settings, _, calls = world
    es = FakeEs({"zabbix": INGESTED})
    status.collect(settings, es=es, now=NOW, sources=("zabbix",), hosts={"zabbix": ["db-02"]})
    status.collect(settings, es=es, now=NOW, sources=("zabbix",), all_hosts=True)
    assert calls == [("zabbix", ["db-02"]), ("zabbix", None)]


def test_a_source_with_no_ingested_host_compares_nothing(world):
    settings, _, calls = world
    current = status.collect(settings, es=FakeEs({}), now=NOW, sources=("kcmm",))
    gap = next(c for c in current.checks if c.name == "gaps kcmm")
    assert calls == [] and gap.state == "OK" and "nothing compared" in gap.detail
