"""IIS W3C and HAProxy parsers (the real latency-bearing samples) and Windows Security events."""

from __future__ import annotations

import json
from collections import Counter

from etl.logs.parsers import ParseContext, make_parser
from logs_parse_support import assert_accounted, parse_sample, text_lines


def _iis_independent(path):
    """(#-lines + blank lines, [(line_no, row dict)]) reading the header the way the W3C spec describes it."""
    fields, rows, comments = None, [], 0
    for i, line in enumerate(text_lines(path), 1):
        if line.startswith("#"):
            comments += 1
            if line.startswith("#Fields:"):
                fields = line.split()[1:]
        elif line.strip():
            rows.append((i, dict(zip(fields, line.split(" ")))))
        else:
            comments += 1
    return comments, rows


def test_iis_samples(settings, samples_dir, tmp_path):
    for k, path in enumerate([samples_dir / "evtx_attack_samples" / "Tunna_rdp_tunnel_IIS.log",
                              samples_dir / "lnav_iis_w3c" / "logfile_w3c_big.0"]):
        parsed = parse_sample(settings, tmp_path / str(k), path, "iis")
        assert_accounted(parsed, path)
        comments, rows = _iis_independent(path)
        assert parsed.report.skipped == comments
        assert parsed.report.parsed == len(rows) and parsed.report.quarantined_total == 0
        for line_no, row in rows:
            d = parsed.flat(line_no)
            assert d["event.duration"] == int(row["time-taken"]) * 1_000_000
            assert d["http.response.status_code"] == int(row["sc-status"])
            assert d["source.ip"] == row["c-ip"]
            assert d["@timestamp"] == f"{row['date']}T{row['time']}.000000Z"
    d = parsed.flat(5)  # lnav: 2015-01-13 00:32:17 ... /robots.txt ... 404 0 2 1405 242 283
    assert d["event.dataset"] == "iis" and d["url.path"] == "/robots.txt"
    assert (d["http.response.bytes"], d["http.request.bytes"], d["event.duration"]) == (1405, 242, 283_000_000)
    assert d["user_agent.original"].startswith("Mozilla/5.0 (compatible; bingbot/2.0;")


def test_iis_data_before_fields_header_is_quarantined_not_fatal():
    p = make_parser("iis", ParseContext.build("u_ex.log"))
    try:
        p.parse("2019-09-03 10:13:36 10.0.2.15 GET /x - 80 - 10.0.2.17 - - 200 0 0 7")
    except Exception as exc:
        assert type(exc).__name__ == "LineError" and "#Fields" in exc.reason
    else:
        raise AssertionError("a data line without a #Fields header must be refused")


def test_haproxy_sample(settings, samples_dir, tmp_path):
    path = samples_dir / "lnav_haproxy" / "logfile_haproxy.0"
    parsed = parse_sample(settings, tmp_path, path, "haproxy", year=2019, tz="Europe/Berlin")
    assert_accounted(parsed, path)
    lines = text_lines(path)
    http = [(i, l) for i, l in enumerate(lines, 1) if l.endswith('HTTP/1.1"')]
    assert parsed.count(event__action="request") == len(http)
    for i, line in http:
        timers = next(t for t in line.split() if t.count("/") == 4 and t.replace("/", "").replace("-", "").isdigit())
        tt = int(timers.split("/")[4])
        assert parsed.flat(i)["event.duration"] == tt * 1_000_000
    d = parsed.flat(4)
    # accept date 25/Feb/2019:16:19:48.143 in Europe/Berlin (UTC+1) -> 15:19:48.143Z
    assert d["@timestamp"] == "2019-02-25T15:19:48.143000Z"
    assert (d["source.ip"], d["source.port"], d["haproxy.timers.tr"], d["haproxy.timers.tt"]) == ("141.35.244.171", 53332, 1457, 1487)
    assert d["haproxy.backend_name"] == "bk_admin" and d["http.request.method"] == "GET"
    assert d["url.path"] == "/admin/colt/administration"
    ssl = next(i for i, l in enumerate(lines, 1) if "SSL handshake failure" in l)
    assert parsed.flat(ssl)["event.action"] == "connection_error"
    assert parsed.flat(1)["@timestamp"] == "2019-02-25T15:19:38.000000Z"  # syslog header, year from settings


def test_winsec_samples(settings, samples_dir, tmp_path):
    for k, name in enumerate(["CA_4624_4625_LogonType2_LogonProc_chrome.jsonl", "kerberos_pwd_spray_4771.jsonl"]):
        path = samples_dir / "evtx_attack_samples" / name
        parsed = parse_sample(settings, tmp_path / str(k), path, "winsec")
        assert_accounted(parsed, path)
        events = [json.loads(l) for l in text_lines(path)]
        assert Counter(d["event"]["code"] for d in parsed.docs.values()) == Counter(str(e["EventID"]) for e in events)
        for i, e in enumerate(events, 1):
            d = parsed.flat(i)
            user = e["EventData"].get("TargetUserName")
            assert d.get("user.name") == (user if user not in (None, "-") else None)
    spray = parsed
    d = spray.flat(next(i for i, e in enumerate(events, 1) if e["EventID"] == 4771))
    assert (d["event.action"], d["event.outcome"], d["source.ip"]) == ("kerberos_preauth_failed", "failure", "172.16.66.1")
    assert d["winlog.event_data.Status"] == "0x00000018" and "pre-authentication failed" in d["event.reason"]
    ok = [spray.flat(i) for i, e in enumerate(events, 1) if e["EventID"] == 4768 and e["EventData"]["Status"] == "0x00000000"]
    assert ok and all(x["event.outcome"] == "success" for x in ok)
    assert ok[-1]["source.ip"] == "172.16.66.1"  # ::ffff:172.16.66.1 (IPv4-mapped) -> the IPv4 address
    chrome = samples_dir / "evtx_attack_samples" / "CA_4624_4625_LogonType2_LogonProc_chrome.jsonl"
    d = parse_sample(settings, tmp_path / "c", chrome, "winsec").flat(1)
    assert (d["event.code"], d["event.action"], d["user.name"]) == ("4625", "logon_failed", "IEUser")
    assert d["winlog.event_data.FailureReason"] == "%%2313" and d["@timestamp"] == "2020-09-09T13:18:23.627951Z"
    assert "source.ip" not in d  # IpAddress '-'
