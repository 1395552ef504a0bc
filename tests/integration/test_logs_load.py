"""Loading real log samples into the real Elasticsearch: counts in ES equal parsed counts, the
documents carry the contract fields, a re-load duplicates nothing, bad lines are quarantined."""

from __future__ import annotations

import dataclasses
import gzip
import re
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
        # "message repeated N times" lines are N documents
        assert f.loaded == f.parsed + f.repeated_extra and f.load_failed == 0
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
    def times(line):
        m = re.search(r"message repeated (\d+) times: \[", line)
        return int(m.group(1)) if m else 1

    assert _count(es, "sshd", event__action="failed_password") == sum(times(l) for l in lines if "Failed password for" in l)
    hit = es.search(index=f"{PREFIX}-logs-sshd-*", size=1, query={"bool": {"filter": [
        {"term": {"event.action": "failed_password"}}, {"term": {"source.ip": "24.151.103.17"}}]}})["hits"]
    expected = sum(times(l) for l in lines if "Failed password" in l and " 24.151.103.17 " in l)
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

    # tomcat: the 1970 line is in the quarantine, not in ES; the invalid UTF-8 line is loaded,
    # tagged invalid_utf8, its bytes escaped in event.original
    tomcat = reports[2]
    assert tomcat.files[0].quarantined == {"timestamp before 2000": 1}
    assert tomcat.files[0].replaced_utf8 == 1 and _count(es, "tomcat.access", tags="invalid_utf8") == 1
    assert tomcat.quarantine_paths and all("logs-tomcat" in p for p in tomcat.quarantine_paths)

    # re-load everything: same ids, nothing duplicated
    before = _count(es)
    again = [load_files(s, fmt, [samples_dir / rel], year=year, run_id="it-2") for rel, fmt, year in SAMPLES]
    assert sum(r.files[0].loaded for r in again) == sum(per_dataset.values())
    assert _count(es) == before


def test_rotated_gzip_and_equal_lines_of_two_hosts(env, samples_dir, tmp_path):
    """Rotation: yesterday's auth.log read again as auth.log.1.gz adds nothing; the same access
    lines from two hosts are two hosts' documents."""
    s, es = env
    auth = samples_dir / "elastic_auth_log/auth.log"
    first = load_files(s, "sshd", [auth], year=2017, run_id="it-rot1").files[0]
    before = _count(es, "sshd")
    rotated = tmp_path / "auth.log.1.gz"
    rotated.write_bytes(gzip.compress(auth.read_bytes()))
    again = load_files(s, "auto", [rotated, str(rotated)], year=2017, run_id="it-rot2")
    assert len(again.files) == 1 and again.files[0].fmt == "sshd"
    assert again.files[0].loaded == first.loaded and _count(es, "sshd") == before
    access = samples_dir / "elastic_apache_access/apache_logs"
    a = load_files(s, "apache", [access], host="web1", run_id="it-h1").files[0]
    b = load_files(s, "apache", [access], host="web2", run_id="it-h2").files[0]
    assert a.loaded == b.loaded == a.parsed
    assert _count(es, "apache.access", host__name="web1") == _count(es, "apache.access", host__name="web2") == a.loaded
