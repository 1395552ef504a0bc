"""Lake findings dated by event time, end to end on the real Elasticsearch and a file lake: the
same events analysed through windows starting on two different days give identical lake rows, a
window crossing midnight files the finding under its first event's day, a grown span replaces the
earlier row. Oracle: the Parquet files read directly with pyarrow (partition day from the path)
and the test's own line list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl.logs.jobs import run_job
from etl.logs.load import load_files
from etl.search.client import es_client
from etl.window import UTC, Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-lakedays"
D1 = dt.datetime(2005, 6, 14, tzinfo=UTC)
MIDNIGHT = D1 + dt.timedelta(days=1)
PROVENANCE = ("window_start", "window_end")  # which run last wrote the row: differs by design


def stamp(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:>2} {t:%H:%M:%S}"


def failed(t, ip, pid):
    return f"{stamp(t)} bastion sshd[{pid}]: Failed password for root from {ip} port {40000 + pid % 1000} ssh2"


ACROSS = [MIDNIGHT - dt.timedelta(minutes=4 - i) for i in range(4)] + \
         [MIDNIGHT + dt.timedelta(minutes=i, seconds=5) for i in range(4)]          # 23:56 .. 00:03:05
LATER = [MIDNIGHT + dt.timedelta(hours=10, seconds=20 * i) for i in range(6)]        # day 2, 10:00


def lines() -> list[str]:
    out = [failed(t, "203.0.113.60", 5000 + i) for i, t in enumerate(ACROSS)]
    return out + [failed(t, "198.51.100.61", 6000 + i) for i, t in enumerate(LATER)]


@pytest.fixture(scope="module")
def env(settings, elasticsearch_service, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lakedays")
    s = dataclasses.replace(settings, es_index_prefix=PREFIX, quarantine_dir=str(tmp / "quarantine"), log_settle_s=0,
                            lake_url=f"file://{tmp / 'unused'}")
    es = es_client(s)
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all")
    path = tmp / "secure.1.gz"
    path.write_bytes(gzip.compress(("\n".join(lines()) + "\n").encode()))
    report = load_files(s, "sshd", [path], year=2005, tz="UTC")
    assert report.files[0].loaded == len(lines())
    yield s, es, tmp
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all")


def fresh_findings(es):
    es.indices.delete(index=f"{PREFIX}-findings", ignore_unavailable=True)


def lake_rows(root: Path) -> dict[str, list[dict]]:
    """{partition day: rows} straight from the Parquet files (no monetl reader)."""
    out: dict[str, list[dict]] = {}
    for file in sorted((root / "findings" / "job=illegal_access").glob("date=*/*.parquet")):
        day = file.parent.name.split("=", 1)[1]
        rows = [{k: v for k, v in r.items() if k not in PROVENANCE} for r in pq.read_table(file).to_pylist()]
        if rows:
            out.setdefault(day, []).extend(rows)
    return {d: sorted(r, key=lambda x: (x["rule"], x["source"] or "")) for d, r in out.items()}


def analyse(s, tmp, name, *windows):
    lake = tmp / name
    cfg = dataclasses.replace(s, lake_url=f"file://{lake}")
    for w in windows:
        run_job(cfg, "illegal_access", w)
    return lake_rows(lake)


A = Window(D1 + dt.timedelta(hours=18), MIDNIGHT + dt.timedelta(hours=18))   # starts on day 1
B = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(days=1))                        # starts on day 2
SHORT = Window(D1 + dt.timedelta(hours=18), MIDNIGHT + dt.timedelta(minutes=1))  # sees 5 of the 8


def brute(rows, source):
    return [(day, r) for day, rs in rows.items() for r in rs if r["rule"] == "brute_force" and r["source"] == source]


def test_windows_starting_on_two_days_write_identical_rows_under_the_event_day(env):
    s, es, tmp = env
    fresh_findings(es)
    only_a = analyse(s, tmp, "lake-a", A)
    fresh_findings(es)
    only_b = analyse(s, tmp, "lake-b", B)
    assert only_a == only_b
    [(day, across)] = brute(only_a, "203.0.113.60")
    assert day == f"{ACROSS[0]:%Y-%m-%d}" == "2005-06-14"  # window B starts on the 15th
    assert across["count"] == len(ACROSS) and across["first_seen"] == ACROSS[0] and across["last_seen"] == ACROSS[-1]
    [(day, later)] = brute(only_a, "198.51.100.61")
    assert day == "2005-06-15" and later["count"] == len(LATER)  # window A starts on the 14th
    fingerprints = [r["fingerprint"] for rs in only_a.values() for r in rs]
    assert len(fingerprints) == len(set(fingerprints))


def test_reruns_over_shifted_windows_converge_and_a_grown_span_replaces_its_row(env):
    s, es, tmp = env
    fresh_findings(es)
    lake = tmp / "lake-seq"
    cfg = dataclasses.replace(s, lake_url=f"file://{lake}")
    run_job(cfg, "illegal_access", SHORT)
    [(day, first)] = brute(lake_rows(lake), "203.0.113.60")
    assert day == "2005-06-14" and first["count"] == 5 and first["last_seen"] == ACROSS[4]
    for w in (A, B, A, SHORT):
        run_job(cfg, "illegal_access", w)
    after = lake_rows(lake)
    [(day, grown)] = brute(after, "203.0.113.60")
    assert day == "2005-06-14" and grown["count"] == len(ACROSS) and grown["last_seen"] == ACROSS[-1]
    assert grown["fingerprint"] == first["fingerprint"]
    fresh_findings(es)
    assert after == analyse(s, tmp, "lake-b-again", B)


def test_the_findings_extract_reads_the_event_dated_rows(env):
    """The extract (DuckDB over the lake, then .hyper) counts each finding once on its first event's
    report day: the same numbers as the lake rows grouped by first_seen day."""
    from tableauhyperapi import Connection, CreateMode

    from etl.extracts.build import build
    from etl.extracts.hyper_store import hyper_process, qualified

    s, es, tmp = env
    fresh_findings(es)
    rows = analyse(s, tmp, "lake-extract", A)
    cfg = dataclasses.replace(s, lake_url=f"file://{tmp / 'lake-extract'}", report_tz="UTC",
                              extracts_dir=str(tmp / "extracts"), extracts_hdfs_url="", tableau_server_url="")
    [result] = build(cfg, "findings", [D1.date(), MIDNIGHT.date()])
    expected = sorted((r["first_seen"].date(), r["rule"], r["source"], 1, r["count"])
                      for rs in rows.values() for r in rs)
    with hyper_process() as process, Connection(process.endpoint, str(result.path), CreateMode.NONE) as conn:
        got = sorted((d.to_date() if hasattr(d, "to_date") else d, rule, source, int(n), int(events))
                     for d, rule, source, n, events in conn.execute_list_query(
                         f"SELECT date_key, rule, source, findings, events FROM {qualified('fact_findings_daily')}"))
    got = [(dt.date(d.year, d.month, d.day), *rest) for d, *rest in got]
    assert got == expected and {day for day, *_ in got} == {D1.date(), MIDNIGHT.date()}
