"""KCMM extraction against the real PostgreSQL `kcmm` database (schema from schemas/kcmm/schema.sql,
data from the generator) and CSV exports of the same samples: local time -> UTC, collector
failures quarantined, DB mode == CSV mode, counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import psycopg2
import pytest

from etl.quarantine import Quarantine, read
from etl.schema import point_schema
from etl.sources import open_source
from etl.sources.kcmm_sample import machines, seed_db, write_csv_export
from etl.window import Window

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
# Monday 2026-10-12 09:00-11:00 in Shanghai = 01:00-03:00 UTC: the open is in the window.
START = dt.datetime(2026, 10, 12, 1, 0, tzinfo=UTC)
END = START + dt.timedelta(hours=2)
MACHINES = 3


@pytest.fixture(scope="module")
def kcmm(postgres_service, settings, tmp_path_factory):
    offset = random.randrange(200, 100_000)  # machines of our own: never touch others' rows
    test_settings = dataclasses.replace(settings, home=tmp_path_factory.mktemp("home"),
                                        quarantine_dir=str(tmp_path_factory.mktemp("quarantine")),
                                        kcmm_csv_dir=str(tmp_path_factory.mktemp("inbox")))
    seeded = seed_db(test_settings, START, END, machine_count=MACHINES, seed=5, machine_offset=offset)
    fleet = machines(MACHINES + offset)[offset:]
    yield {"settings": test_settings, "hosts": [m.machine_name for m in fleet], "ids": [m.machine_id for m in fleet],
           "seeded": seeded, "offset": offset}
    conn = psycopg2.connect(host="127.0.0.1", port=settings.pg_port, user="kcmm", password="kcmm", dbname="kcmm")
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM kcmm_sample WHERE machine_id = ANY(%s)", ([m.machine_id for m in fleet],))
        cur.execute("DELETE FROM kcmm_machine WHERE machine_id = ANY(%s)", ([m.machine_id for m in fleet],))
    conn.close()


def _extract(settings, mode, hosts, window, run_id, **options):
    with open_source("kcmm", settings, mode, hosts=hosts, **options) as source, \
            Quarantine(settings, "kcmm", run_id) as quarantine:
        batches = list(source.extract(window, run_id, quarantine))
        # Phase two, as the loader does once Elasticsearch acknowledged the rows (CSV mode only).
        getattr(source, "commit", lambda: None)()
    assert all(b.schema == point_schema() for b in batches)
    return [r for b in batches for r in b.to_pylist()], quarantine


def test_db_samples_become_utc_points_and_failures_are_quarantined(kcmm):
    settings = kcmm["settings"]
    points, quarantine = _extract(settings, "db", kcmm["hosts"], Window(START, END), "db-1")
    seeded = kcmm["seeded"]
    assert len(points) == seeded["samples"] - seeded["missing_values"]
    assert quarantine.count == seeded["missing_values"] > 0
    assert all(e["reason"].startswith("no value (collector status 1)") for e in read(quarantine.path))
    assert min(p["clock"] for p in points) == int(START.timestamp())  # 09:00 Shanghai
    assert max(p["clock"] for p in points) == int(END.timestamp()) - 60
    assert {p["host"] for p in points} == set(kcmm["hosts"])
    versions = [p for p in points if p["key"] == "kcmm.client_version"]
    assert versions and all(p["value_type"] == 1 and p["value_text"].startswith("V8.") for p in versions)
    latency = [p for p in points if p["key"] == "kcmm.order_entry_latency_ms"]
    assert all(p["units"] == "ms" and p["value"] > 0 for p in latency)


def test_db_values_match_the_rows_exactly(kcmm):
    settings = kcmm["settings"]
    conn = psycopg2.connect(host="127.0.0.1", port=settings.pg_port, user="kcmm", password="kcmm", dbname="kcmm")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.machine_name, c.counter_name, "
                    "extract(epoch from s.sample_time AT TIME ZONE 'Asia/Shanghai')::bigint, s.value "
                    "FROM kcmm_sample s JOIN kcmm_machine m USING (machine_id) JOIN kcmm_counter c USING (counter_id) "
                    "WHERE s.machine_id = ANY(%s) AND s.value IS NOT NULL", (kcmm["ids"],))
        expected = sorted((h, f"kcmm.{c}", int(t), float(v)) for h, c, t, v in cur.fetchall())
    conn.close()
    points, _ = _extract(settings, "db", kcmm["hosts"], Window(START, END), "db-2")
    got = sorted((p["host"], p["key"], p["clock"], p["value"]) for p in points if p["value"] is not None)
    assert got == expected


def test_db_and_csv_modes_give_identical_points(kcmm):
    settings = kcmm["settings"]
    write_csv_export(settings.kcmm_csv_dir, START, END, machine_count=MACHINES, seed=5,
                     machine_offset=kcmm["offset"], done_marker=True)
    db_points, _ = _extract(settings, "db", kcmm["hosts"], Window(START, END), "cmp-db")
    csv_points, _ = _extract(settings, "csv", kcmm["hosts"], Window(START, END), "cmp-csv")

    def canon(points):
        return sorted(tuple((k, str(v)) for k, v in sorted(p.items()) if k != "run_id") for p in points)

    assert len(csv_points) == len(db_points) > 1000
    assert canon(csv_points) == canon(db_points)
    # the file was taken: a second run gets nothing from it
    again, _ = _extract(settings, "csv", kcmm["hosts"], Window(START, END), "cmp-csv-2")
    assert again == []


def test_csv_bad_rows_go_to_quarantine_with_file_and_line(kcmm, tmp_path):
    settings = dataclasses.replace(kcmm["settings"], kcmm_csv_dir=str(tmp_path / "inbox"))
    path = write_csv_export(settings.kcmm_csv_dir, START, START + dt.timedelta(minutes=10), machine_count=1,
                            bad_rows=4, done_marker=True)
    points, quarantine = _extract(settings, "csv", None, Window(START, END), "bad-csv")
    entries = list(read(quarantine.path))
    assert len(entries) == 4 and len(points) > 50
    assert all(e["ref"].startswith(f"{path}:") and int(e["ref"].rsplit(":", 1)[1]) > 1 for e in entries)


@pytest.mark.parametrize("mode", ["db", "csv"])
def test_count_matches_extract(kcmm, mode, tmp_path):
    settings = dataclasses.replace(kcmm["settings"], kcmm_csv_dir=str(tmp_path / "inbox"), home=tmp_path)
    if mode == "csv":
        write_csv_export(settings.kcmm_csv_dir, START, END, machine_count=MACHINES, seed=5,
                         machine_offset=kcmm["offset"], done_marker=True)
    window = Window(START - dt.timedelta(hours=1), END)
    with open_source("kcmm", settings, mode, hosts=kcmm["hosts"]) as source:
        counts = source.count(window, dt.timedelta(hours=1))
    points, _ = _extract(settings, mode, kcmm["hosts"], window, f"count-{mode}")
    assert list(counts.values())[0] == 0 and sum(counts.values()) == len(points) > 0


def test_db_batches_are_bounded(kcmm):
    settings = kcmm["settings"]
    with open_source("kcmm", settings, "db", hosts=kcmm["hosts"], max_batch_rows=500) as source, \
            Quarantine(settings, "kcmm", "bounded") as quarantine:
        sizes = [b.num_rows for b in source.extract(Window(START, END), "bounded", quarantine)]
    assert max(sizes) == 500 and sum(sizes) == kcmm["seeded"]["samples"] - kcmm["seeded"]["missing_values"]
