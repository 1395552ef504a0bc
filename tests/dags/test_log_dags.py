"""log_illegal_access / log_mail_failures / log_trade_perf: schedule shape, and one real 15-minute
interval of log_illegal_access run end to end with dag.test over the Kerberos spray sample loaded
into the real Elasticsearch, its notification arriving at a local SMTP sink."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
UTC = dt.timezone.utc
EXPECTED = {"log_illegal_access": "*/15 * * * *", "log_mail_failures": "0 * * * *", "log_trade_perf": "*/5 * * * *"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_schedule_has_real_intervals_and_bounded_catchup(dagbag, dag_id):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags[dag_id]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is True and dag.max_active_runs == 1
    assert dag.default_args["retries"] >= 1
    assert [t.task_id for t in dag.tasks] == ["analyse", "notify"]
    assert dag.timetable.expression == EXPECTED[dag_id] and str(dag.timetable.timezone) == "UTC"
    assert f"monetl logs run {dag_id.removeprefix('log_')}" in dag.doc_md


@pytest.mark.integration
@pytest.mark.slow
def test_log_illegal_access_runs_one_interval_end_to_end(dagbag, airflow_db, settings, elasticsearch_service,
                                                         samples_dir, monkeypatch, tmp_path):
    import dataclasses

    from aiosmtpd.controller import Controller

    from etl.logs.load import load_files
    from etl.search.client import es_client
    from etl.window import Window

    prefix = "monetltest-logdags"
    for name, value in {"MONETL_ES_INDEX_PREFIX": prefix, "MONETL_QUARANTINE_DIR": str(tmp_path / "q"),
                        "MONETL_LAKE_URL": f"file://{tmp_path / 'lake'}"}.items():
        monkeypatch.setenv(name, value)
    s = dataclasses.replace(settings, es_index_prefix=prefix, quarantine_dir=str(tmp_path / "q"),
                            lake_url=f"file://{tmp_path / 'lake'}")
    es = es_client(s)
    es.indices.delete(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    # The real spray sample, its dates moved from 2020-07-22 to 2026-11-24: Airflow creates no task
    # instances before a DAG's start date, and a start date in 2020 would make catch-up run 6 years.
    spray = (samples_dir / "evtx_attack_samples/kerberos_pwd_spray_4771.jsonl").read_text()
    assert spray.count('"TimeCreated": "2020-07-22 ') == len(spray.splitlines())
    moved = tmp_path / "kerberos_pwd_spray_4771_moved.jsonl"
    moved.write_text(spray.replace('"TimeCreated": "2020-07-22 ', '"TimeCreated": "2026-11-24 '))
    load_files(s, "winsec", [moved])

    class Sink:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("MONETL_SMTP_PORT", str(port))
    monkeypatch.setenv("MONETL_NOTIFY_SMTP_TO", "secops@example.com")
    try:
        # The spray is at 20:29:36 UTC; the run at logical date 20:30 covers [20:15, 20:30).
        run = dagbag.dags["log_illegal_access"].test(logical_date=dt.datetime(2026, 11, 24, 20, 30, tzinfo=UTC))
        assert run.state == "success"
        interval = Window(run.data_interval_start, run.data_interval_end)
        assert interval == Window.parse("2026-11-24T20:15Z", "2026-11-24T20:30Z")
        es.indices.refresh(index=f"{prefix}-findings")
        stored = [h["_source"] for h in es.search(index=f"{prefix}-findings", size=50)["hits"]["hits"]]
        rules = {(d["rule"], d["source"]) for d in stored}
        assert ("password_spray", "172.16.66.1") in rules and ("success_after_failures", "172.16.66.1") in rules
        assert len(sink.messages) == 1 and b"password_spray" in sink.messages[0]
        assert all(d["window"]["start"].startswith("2026-11-24T20:15") for d in stored)
    finally:
        controller.stop()
        es.indices.delete(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
