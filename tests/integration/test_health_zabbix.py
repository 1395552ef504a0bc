"""monetl's health in the real Zabbix 6.0: the template imports (items, triggers, macros, host);
a real ingest run pushes its figures, read back with history.get; a failed verification raises
its problem; and once ingestion stops, the lag trigger fires (problem.get). The test host has its
own name and a 20 s ingest max age (host macro), so nothing waits 15 real minutes and the real
`monetl` host is never touched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import pytest

from etl import ingest
from etl.errors import VerificationError
from etl.health import template
from etl.lake.compact import verify_day
from etl.search.client import es_client
from etl.seed import delete_hosts, ensure_host, ensure_items, insert_history, writer_connection, zabbix_api
from etl.sources import open_source
from etl.window import Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "tehealth"
UTC = dt.timezone.utc
MAX_AGE = 20


def _wait(what, fn, timeout: float = 180.0, step: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {timeout:.0f}s")
        time.sleep(step)


@pytest.fixture(scope="module")
def env(settings, zabbix_service, elasticsearch_service, tmp_path_factory):
    tag = uuid.uuid4().hex[:8]
    health_host = f"tehealth-monetl-{tag}"
    cfg = dataclasses.replace(settings, es_index_prefix=PREFIX, health_host=health_host, health_push=True,
                              home=tmp_path_factory.mktemp("home"),
                              quarantine_dir=str(tmp_path_factory.mktemp("quarantine")),
                              lake_url=f"file://{tmp_path_factory.mktemp('lake')}")
    api = zabbix_api(cfg)
    installed = template.install(cfg, macros={"{$MONETL.INGEST.MAX_AGE}": str(MAX_AGE)}, api=api)
    # A Zabbix host with data for the ingest run to read (the source side, not the health host).
    source_host = f"tehealth-src-{tag}"
    hostid = ensure_host(api, source_host, ["monetltest"])
    itemid = int(ensure_items(api, hostid, [{"key": "t.cpu", "name": "cpu", "value_type": 0, "units": "%"}])
                 [(hostid, "t.cpu")])
    es = es_client(cfg)
    yield dataclasses.make_dataclass("Env", ["settings", "api", "installed", "source_host", "itemid", "es"])(
        cfg, api, installed, source_host, itemid, es)
    delete_hosts(api, cfg, [source_host, health_host])
    api.logout()
    es.indices.delete(index=f"{PREFIX}-points-*", ignore_unavailable=True, allow_no_indices=True)


def _items(env) -> dict[str, dict]:
    return {i["key_"]: i for i in env.api.item.get(hostids=[env.installed["hostid"]],
                                                   output=["itemid", "key_", "value_type"])}


def _history(env, key: str) -> list[dict]:
    item = _items(env)[key]
    return env.api.history.get(itemids=[item["itemid"]], history=int(item["value_type"]), output="extend",
                               sortfield="clock", sortorder="DESC", limit=5)


def _problems(env) -> list[str]:
    return [p["name"] for p in env.api.problem.get(hostids=[env.installed["hostid"]], output=["name"])]


def test_template_imports_with_every_item_and_trigger(env):
    assert set(_items(env)) == template.item_keys()
    triggers = env.api.trigger.get(hostids=[env.installed["hostid"]], output=["description", "expression"],
                                   expandExpression=True)
    names = {t["description"] for t in triggers}
    for expected in ("monetl: no successful zabbix ingest for {$MONETL.INGEST.MAX_AGE}s",
                     "monetl: zabbix gaps open for more than {$MONETL.GAPS.MAX_AGE}s",
                     "monetl: zabbix lake verification failed",
                     "monetl: zabbix quarantine rate above {$MONETL.QUARANTINE.MAX_PCT}%",
                     "monetl: no extract build for {$MONETL.EXTRACTS.MAX_AGE}s"):
        assert expected in names
    # Importing again changes nothing (idempotent).
    again = template.install(env.settings, macros={"{$MONETL.INGEST.MAX_AGE}": str(MAX_AGE)}, api=env.api)
    assert again == env.installed


def test_a_real_ingest_run_pushes_its_figures_and_stopping_fires_the_lag_trigger(env):
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    window = Window(end - dt.timedelta(minutes=10), end)
    with writer_connection(env.settings) as conn:
        insert_history(conn, 0, [(env.itemid, int(window.start.timestamp()) + 30 * i, 0, float(i)) for i in range(20)])
    pushed_after = int(time.time())
    summary = ingest.run(env.settings, open_source("zabbix", env.settings, "api", hosts=[env.source_host]), window,
                         overlap=dt.timedelta(0))
    assert summary.ok and summary.points_loaded == 20
    # Oracle: Zabbix's own history of the health host.
    last = _wait("last_success in history", lambda: _history(env, "monetl.ingest.last_success[zabbix]"), 60, 1)
    assert int(last[0]["value"]) >= pushed_after
    assert int(_history(env, "monetl.ingest.loaded[zabbix]")[0]["value"]) == 20
    assert float(_history(env, "monetl.ingest.quarantine_pct[zabbix]")[0]["value"]) == 0.0
    assert int(_history(env, "monetl.ingest.lag[zabbix]")[0]["value"]) <= int(time.time()) - int(end.timestamp()) + 1
    assert not any("zabbix ingest" in p for p in _problems(env))
    # Ingestion stops: no more runs. The trigger (now() - last success > 20 s here) fires by itself.
    fired = _wait("the ingest lag problem", lambda: [p for p in _problems(env) if "no successful zabbix ingest" in p])
    assert fired == [f"monetl: no successful zabbix ingest for {MAX_AGE}s"]


def test_a_failed_verification_raises_its_problem(env):
    day = (dt.datetime.now(UTC) - dt.timedelta(days=30)).date()
    with pytest.raises(VerificationError):
        verify_day(env.settings, "kcmm", day)   # nothing published for that day in the test lake
    assert _wait("verified=0", lambda: _history(env, "monetl.lake.verified[kcmm]"), 60, 1)[0]["value"] == "0"
    _wait("the verification problem", lambda: [p for p in _problems(env) if p == "monetl: kcmm lake verification failed"],
          60, 2)


def test_a_push_to_a_dead_trapper_never_fails_the_run(env, caplog):
    import logging

    from etl.health import push

    dead = dataclasses.replace(env.settings, zabbix_server_port=1)  # nothing listens there
    push._warned.clear()
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    with caplog.at_level(logging.DEBUG, logger="etl.health.push"):
        for _ in range(2):
            summary = ingest.run(dead, open_source("zabbix", dead, "api", hosts=[env.source_host]),
                                 Window(end - dt.timedelta(minutes=5), end), overlap=dt.timedelta(0))
            assert summary.ok
    warnings = [r for r in caplog.records if r.name == "etl.health.push" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "health push" in warnings[0].getMessage()
