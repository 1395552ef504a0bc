"""Loading real log samples into the real Elasticsearch: counts in ES equal parsed counts, the
documents carry the contract fields, a re-load duplicates nothing, bad lines are quarantined."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from etl.logs.load import load_files
from etl.search.client import es_client

pytestmark = pytest.mark.integration

PREFIX = "monetltest-logsload"
SAMPLES = [
    ("elastic_auth_log/auth.log", "sshd", 2017),
    ("fail2ban/postfix.log", "postfix", 2017),
    ("evtx_attack_samples/tomcat_web_attack_access_log.txt", "tomcat", None),
    ("lnav_iis_w3c/logfile_w3c_big.0", "iis", None),
    ("evtx_attack_samples/kerberos_pwd_spray_4771.jsonl", "winsec", None),
    ("fail2ban/apache-auth.log", "apache", 2017),
]


@pytest.fixture(scope="module")
def env(settings, elasticsearch_service, tmp_path_factory):
    s = dataclasses.replace(settings, es_index_prefix=PREFIX,
                            quarantine_dir=str(tmp_path_factory.mktemp("quarantine")))
    es = es_client(s)
    es.options(ignore_status=404).indices.delete(index=f"{PREFIX}-logs-*", expand_wildcards="all")
    yield s, es
    es.options(ignore_status=404).indices.delete(index=f"{PREFIX}-logs-*", expand_wildcards="all")


def _count(es, dataset=None, **term):
    query = {"bool": {"filter": [{"term": {k.replace("__", "."): v}} for k, v in term.items()]}}
    if dataset:
        query["bool"]["filter"].append({"term": {"event.dataset": dataset}})
    return es.count(index=f"{PREFIX}-logs-*", query=query)["count"]


def test_load_counts_fields_and_idempotent_reload(env, samples_dir):
    s, es = env
    reports = [load_files(s, fmt, [samples_dir / rel], year=year, run_id="it-1") for rel, fmt, year in SAMPLES]
    per_dataset = Counter()
    for report in reports:
        f = report.files[0]
        assert f.read == f.parsed + f.skipped + f.quarantined_total
        assert f.loaded == f.parsed and f.load_failed == 0
        per_dataset.update(f.datasets)
    for dataset, n in per_dataset.items():
        assert _count(es, dataset) == n, dataset
    assert _count(es) == sum(per_dataset.values())

    # index naming {prefix}-logs-{dataset}-{YYYY.MM}; auth.log spans March and April 2017
    names = set(es.indices.get(index=f"{PREFIX}-logs-*"))
    assert {f"{PREFIX}-logs-sshd-2017.03", f"{PREFIX}-logs-sshd-2017.04", f"{PREFIX}-logs-apache-error-2013.07",
            f"{PREFIX}-logs-windows-security-2020.07", f"{PREFIX}-logs-tomcat-access-2018.07"} <= names

    # contract fields are searchable with their mapped types
    auth = reports[0].files[0]
    lines = (samples_dir / SAMPLES[0][0]).read_text().splitlines()
    assert _count(es, "sshd", event__action="failed_password") == sum("Failed password for" in l for l in lines)
    hit = es.search(index=f"{PREFIX}-logs-sshd-*", size=1, query={"bool": {"filter": [
        {"term": {"event.action": "failed_password"}}, {"term": {"source.ip": "24.151.103.17"}}]}})["hits"]
    expected = sum("Failed password" in l and " 24.151.103.17 " in l for l in lines)
    assert expected > 100 and hit["total"]["value"] == expected  # the brute-force source of the burst
    if expected:
        src = hit["hits"][0]["_source"]
        assert src["event"]["dataset"] == "sshd" and src["log"]["file"]["path"] == auth.path
        assert lines[src["log"]["offset"] - 1] == src["message"]
    cidr = es.count(index=f"{PREFIX}-logs-*", query={"term": {"source.ip": "172.16.0.0/12"}})["count"]
    assert cidr == sum(1 for l in (samples_dir / SAMPLES[4][0]).read_text().splitlines() if '"172.16.' in l or "ffff:172.16." in l)
    assert _count(es, "postfix", email__delivery__status="rejected", email__dsn="5.7.1") == sum(
        1 for l in (samples_dir / SAMPLES[1][0]).read_text().splitlines() if "reject:" in l and " 5.7.1 " in l)
    durations = es.search(index=f"{PREFIX}-logs-iis-*", size=0, aggs={"d": {"sum": {"field": "event.duration"}}})
    iis_lines = [l for l in (samples_dir / SAMPLES[3][0]).read_text().splitlines() if l and not l.startswith("#")]
    assert durations["aggregations"]["d"]["value"] == sum(int(l.split()[-1]) for l in iis_lines) * 1_000_000

    # tomcat: the 1970 line and the invalid UTF-8 line are in the quarantine, not in ES
    tomcat = reports[2]
    assert tomcat.files[0].quarantined == {"timestamp before 2000": 1, "invalid UTF-8": 1}
    assert tomcat.quarantine_paths and all("logs-tomcat" in p for p in tomcat.quarantine_paths)

    # re-load everything: same ids, nothing duplicated
    before = _count(es)
    again = [load_files(s, fmt, [samples_dir / rel], year=year, run_id="it-2") for rel, fmt, year in SAMPLES]
    assert sum(r.files[0].loaded for r in again) == sum(per_dataset.values())
    assert _count(es) == before
