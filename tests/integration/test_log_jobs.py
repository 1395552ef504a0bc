"""The log-analysis jobs on the REAL samples, loaded through the real loader into the real
Elasticsearch: counts equal an independent reading of the files, and the recorded attacks are found."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from etl.logs.jobs import run_job
from etl.logs.jobs.common import load_rules
from etl.window import UTC, Window

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "monetltest-logjobs-auth"
AUTH_WINDOW = Window.parse("2017-03-27T00:00Z", "2017-04-21T00:00Z")
TOMCAT_WINDOW = Window.parse("2018-07-11T00:00Z", "2018-07-12T00:00Z")
SPRAY_WINDOW = Window.parse("2020-07-22T00:00Z", "2020-07-23T00:00Z")
MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec"], 1)}


@pytest.fixture(scope="module")
def job_settings(settings, elasticsearch_service, tmp_path_factory):
    from etl.search.client import es_client

    s = dataclasses.replace(settings, es_index_prefix=PREFIX,
                            lake_url=f"file://{tmp_path_factory.mktemp('lake')}",
                            quarantine_dir=str(tmp_path_factory.mktemp('quarantine')))
    es = es_client(s)
    es.indices.delete(index=f"{PREFIX}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all")
    return s


@pytest.fixture(scope="module")
def loaded(job_settings, samples_dir):
    from etl.logs.load import load_files

    files = [("sshd", samples_dir / "elastic_auth_log/auth.log", 2017),
             ("tomcat", samples_dir / "evtx_attack_samples/tomcat_web_attack_access_log.txt", None),
             ("winsec", samples_dir / "evtx_attack_samples/kerberos_pwd_spray_4771.jsonl", None),
             ("winsec", samples_dir / "evtx_attack_samples/CA_4624_4625_LogonType2_LogonProc_chrome.jsonl", None),
             ("postfix", samples_dir / "fail2ban/postfix.log", 2017)]
    for fmt, path, year in files:
        load_files(job_settings, fmt, [path], year=year, tz="UTC")
    return samples_dir


# -- independent readings of the files (plain Python, no monetl code) -----------------------------

def failed_lines_per_ip(auth_log: Path, window: Window) -> dict[str, list[dt.datetime]]:
    """'Failed <method> for ... from IP' lines (the one line per attempt) per source IP; a
    'message repeated N times: [ Failed ... ]' line is N attempts."""
    pattern = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) .*Failed \S+ for .*? from (\S+)")
    out: dict[str, list[dt.datetime]] = defaultdict(list)
    for line in auth_log.read_text(errors="replace").splitlines():
        m = pattern.match(line)
        if m:
            mon, day, hh, mm, ss, ip = m.groups()
            when = dt.datetime(2017, MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
            if window.contains(when):
                repeated = re.search(r"message repeated (\d+) times: \[", line)
                out[ip].extend([when] * (int(repeated.group(1)) if repeated else 1))
    return out


def max_in_span(times: list[dt.datetime], span: dt.timedelta) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def by_rule(result, rule):
    return {f.source: f for f in result.findings if f.rule == rule}


@pytest.fixture(scope="module")
def auth_result(job_settings, loaded):
    return run_job(job_settings, "illegal_access", AUTH_WINDOW)


def test_brute_force_counts_equal_failed_password_lines(auth_result, loaded):
    failed = failed_lines_per_ip(loaded / "elastic_auth_log/auth.log", AUTH_WINDOW)
    rule = load_rules()["illegal_access"]["brute_force"]
    n, within = rule["min_failures"], dt.timedelta(minutes=rule["within_minutes"])
    found = by_rule(auth_result, "brute_force")
    sshd_found = {ip: f for ip, f in found.items() if f.target == "ip-10-77-20-248"}
    assert sshd_found, "no brute force found in auth.log"
    for ip, f in sshd_found.items():
        # The finding's count is exactly the file's failed-attempt lines of that source.
        assert f.count == len(failed[ip]), ip
        assert f.first_seen == min(failed[ip]) and f.last_seen == max(failed[ip])
    # Every source with N failures inside half of T is certainly caught (two half-T buckets cover
    # it); nothing is reported without N failures inside T.
    must = {ip for ip, ts in failed.items() if max_in_span(ts, within / 2) >= n}
    may = {ip for ip, ts in failed.items() if max_in_span(ts, within) >= n}
    assert must <= set(sshd_found) <= may


def test_the_burst_is_high_and_followed_by_logins(auth_result, loaded):
    burst = by_rule(auth_result, "brute_force")["24.151.103.17"]
    assert burst.severity == "high"
    failed = failed_lines_per_ip(loaded / "elastic_auth_log/auth.log", AUTH_WINDOW)["24.151.103.17"]
    peak_key = next(k for k in burst.counts if k.startswith("peak_in_"))
    assert burst.counts[peak_key] >= 50 and burst.counts[peak_key] <= max_in_span(failed, dt.timedelta(minutes=10))
    assert burst.evidence_ids and all(e.startswith(f"{PREFIX}-logs-sshd-2017.0") for e in burst.evidence_ids)
    compromised = by_rule(auth_result, "success_after_failures")
    assert compromised["24.151.103.17"].severity == "high"
    accepted = {m.group(1) for m in re.finditer(r"Accepted \S+ for (\S+) from 24\.151\.103\.17",
                                                (loaded / "elastic_auth_log/auth.log").read_text())}
    assert set(compromised["24.151.103.17"].target.split(",")) <= accepted


def test_sudo_outside_shanghai_business_hours(auth_result, loaded):
    from zoneinfo import ZoneInfo

    rule = load_rules()["illegal_access"]["privileged_offhours"]
    zone = ZoneInfo(rule["time_zone"])
    # sudo commands (user = who ran sudo) and successful su (user = who switched).
    sudo = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ (?:sudo: +(\S+) : .*COMMAND=|su\[\d+\]: "
                      r"Successful su for \S+ by (\S+))")
    expected: Counter = Counter()
    for line in (loaded / "elastic_auth_log/auth.log").read_text(errors="replace").splitlines():
        m = sudo.match(line)
        if m and "incorrect password" not in line and "command not allowed" not in line:
            mon, day, hh, mm, ss, sudo_user, su_user = m.groups()
            user = sudo_user or su_user
            local = dt.datetime(2017, MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC).astimezone(zone)
            if not (local.isoweekday() in rule["business_days"]
                    and rule["business_start_hour"] <= local.hour < rule["business_end_hour"]):
                expected[user] += 1
    got = Counter()
    for f in auth_result.findings:
        if f.rule == "privileged_offhours":
            got[f.target] += f.count
    assert expected and got == expected


def test_tomcat_manager_brute_force_and_scanner(job_settings, loaded):
    result = run_job(job_settings, "illegal_access", TOMCAT_WINDOW)
    rule = load_rules()["illegal_access"]["admin_console_bruteforce"]
    prefixes = tuple(p.lower() for p in rule["path_prefixes"])
    line_re = re.compile(rb'^(\S+) \S+ .+? \[(\d\d)/(\w{3})/(\d{4}):[^\]]+\] "(?:\S+) (\S+)[^"]*" (\d{3})')
    requests, denied = Counter(), Counter()
    for raw in (loaded / "evtx_attack_samples/tomcat_web_attack_access_log.txt").read_bytes().splitlines():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # the loader quarantines undecodable lines
        m = line_re.match(raw)
        if not m or m.group(4) == b"1970":
            continue
        path = m.group(5).decode().lower()
        if path.startswith(prefixes):
            ip = m.group(1).decode()
            requests[ip] += 1
            denied[ip] += int(m.group(6)) in rule["denied_statuses"]
    found = by_rule(result, "admin_console_bruteforce")
    assert "192.168.105.83" in found
    expected = {ip for ip in requests if requests[ip] >= rule["min_requests"] and denied[ip] >= rule["min_denied"]}
    assert set(found) == expected
    for ip, f in found.items():
        assert f.counts == {"requests": requests[ip], "denied": denied[ip]}
        assert f.severity == "high" and f.target == "/manager"
    scanners = by_rule(result, "scanner_paths")
    assert {"192.168.105.83", "192.168.105.64"} <= set(scanners)


def test_kerberos_password_spray(job_settings, loaded):
    result = run_job(job_settings, "illegal_access", SPRAY_WINDOW)
    users = set()
    for line in (loaded / "evtx_attack_samples/kerberos_pwd_spray_4771.jsonl").read_text().splitlines():
        event = json.loads(line)
        data = event["EventData"]
        failed = event["EventID"] == 4771 or (event["EventID"] == 4768 and int(data["Status"], 16) != 0)
        if failed and data.get("IpAddress", "").removeprefix("::ffff:") == "172.16.66.1":
            users.add(data["TargetUserName"])
    spray = by_rule(result, "password_spray")["172.16.66.1"]
    assert spray.count == len(users) == 9
    assert set(spray.details["users"]) == users
    assert spray.severity == "high"
    # The spray ends in a successful TGT for "normal" from the same source.
    assert by_rule(result, "success_after_failures")["172.16.66.1"].target == "normal"


def test_postfix_rejects_equal_reject_lines(job_settings, loaded):
    result = run_job(job_settings, "mail_failures", Window.parse("2017-01-01T00:00Z", "2018-01-01T00:00Z"))
    lines = (loaded / "fail2ban/postfix.log").read_text(errors="replace").splitlines()
    rejects = [l for l in lines if "reject:" in l]
    counts = result.stats["counts"]
    assert counts["rejected"] == len(rejects)
    assert counts["sent"] == counts["deferred"] == counts["bounced"] == 0
    dsn5 = sum(1 for l in rejects if re.search(r": \d{3} 5\.\d+\.\d+ ", l))
    assert result.stats["dsn"]["5.x.x"] == dsn5
    # Each top reason is counted as often as the reject lines carry its text.
    top = result.stats["top_reasons"]
    assert top and top[0][1] == max(n for _, n in top)
    # Reasons are normalised: addresses, <host> names, IPs and URL paths are placeholders.
    def normalised(line):
        m = re.search(r": \d{3} (?:\d\.\d+\.\d+ )?(.*?)(?:; (?=(?:from|to|proto|helo)=)|$)", line)
        text = re.sub(r"<[^<>\s@]*@[^<>\s]*>", "<address>", m.group(1).strip())
        text = re.sub(r"(https?://[^\s/]+)/\S*", r"\1/...", text)
        text = re.sub(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])", "<ip>", text)
        return re.sub(r"<(?!address>|ip>)[^<>\s]+>", "<host>", text)

    for reason, n in top:
        assert sum(normalised(line) == reason for line in rejects) == n, reason
    assert result.summary[0].startswith("Mail summary")


def test_reruns_do_not_duplicate_findings_or_lake_rows(job_settings, loaded):
    from etl import lake
    from etl.search.client import es_client

    es = es_client(job_settings)
    first = run_job(job_settings, "illegal_access", SPRAY_WINDOW)
    index = f"{PREFIX}-findings"
    es.indices.refresh(index=index)
    before = es.count(index=index)["count"]
    rows_before = lake.read_findings(job_settings, "illegal_access", SPRAY_WINDOW).num_rows
    second = run_job(job_settings, "illegal_access", SPRAY_WINDOW)
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == before
    rows_after = lake.read_findings(job_settings, "illegal_access", SPRAY_WINDOW).num_rows
    assert rows_after == rows_before == len(first.findings)
    stored = es.get(index=index, id=second.findings[0].fingerprint)["_source"]
    assert stored["count"] == second.findings[0].count and stored["windows_seen"] == 1


def test_cli_prints_json_findings(job_settings, loaded):
    env = dict(os.environ, MONETL_ES_INDEX_PREFIX=PREFIX, MONETL_LAKE_URL=job_settings.lake_url)
    out = subprocess.run([sys.executable, "-m", "etl", "logs", "run", "illegal_access", "--start",
                          SPRAY_WINDOW.start.isoformat(), "--end", SPRAY_WINDOW.end.isoformat(), "--json"],
                         capture_output=True, text=True, env=env, check=True)
    doc = json.loads(out.stdout)
    assert {f["rule"] for f in doc["findings"]} >= {"password_spray", "success_after_failures"}
    table = subprocess.run([sys.executable, "-m", "etl", "logs", "run", "illegal_access", "--start",
                            SPRAY_WINDOW.start.isoformat(), "--end", SPRAY_WINDOW.end.isoformat()],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert "password_spray" in table and "172.16.66.1" in table


def test_run_demo_summarises_every_job(job_settings, loaded):
    from etl.logs.jobs import run_demo

    lines = run_demo(job_settings)
    illegal = next(line for line in lines if line.startswith("illegal_access:"))
    for expected in ("brute_force/high", "password_spray/high", "admin_console_bruteforce/high", "24.151.103.17"):
        assert expected in illegal
    assert next(line for line in lines if line.startswith("mail_failures:")).split()[1] != "no"
    assert any(line.startswith("trade_perf: no loaded log data") for line in lines)


def test_invalid_user_probing_and_logins_from_outside(auth_result, loaded):
    text = (loaded / "elastic_auth_log/auth.log").read_text(errors="replace")
    users: dict[str, set] = defaultdict(set)
    for m in re.finditer(r"sshd\[\d+\]: (?:Failed \S+ for (?:invalid user )?(.*?)|Invalid user (.*?)) from "
                         r"([\d.]+)(?: port \d+)?", text):
        users[m.group(3)].add(m.group(1) if m.group(1) is not None else m.group(2))
    need = load_rules()["illegal_access"]["invalid_user_probe"]["min_distinct_users"]
    probes = by_rule(auth_result, "invalid_user_probe")
    assert probes and set(probes) == {ip for ip, names in users.items() if len(names) >= need}
    for ip, f in probes.items():
        assert f.count == len(users[ip]), ip
    accepted = Counter((m.group(2), m.group(1)) for m in re.finditer(r"Accepted \S+ for (\S+) from ([\d.]+)", text))
    outside = {(f.source, f.target): f.count for f in auth_result.findings if f.rule == "outside_allowlist"}
    # 127.0.0.1 is allowlisted; every other Accepted line is a login from outside.
    assert outside == {k: n for k, n in accepted.items() if k[0] != "127.0.0.1"}


def test_web_401_403_flood_rule_on_tomcat(job_settings, loaded):
    import copy

    from etl.logs.jobs import analyse
    from etl.search.client import es_client

    rules = copy.deepcopy(load_rules())
    rules["illegal_access"]["web_auth_flood"]["min_denied"] = 2  # the sample's 401s are few
    result = analyse(es_client(job_settings), job_settings, "illegal_access", TOMCAT_WINDOW, rules)
    denied = Counter()
    for raw in (loaded / "evtx_attack_samples/tomcat_web_attack_access_log.txt").read_bytes().splitlines():
        m = re.match(rb'^(\S+) .*?" (40[13]) ', raw)
        if m:
            denied[m.group(1).decode()] += 1
    floods = {f.source: f.count for f in result.findings if f.rule == "web_auth_flood"}
    assert floods == {ip: n for ip, n in denied.items() if n >= 2}
