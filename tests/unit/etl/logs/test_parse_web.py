"""apache / nginx / tomcat parsers on the real samples."""

from __future__ import annotations

from collections import Counter

from logs_parse_support import assert_accounted, parse_sample, raw_lines, text_lines


def _status(line: str) -> int:
    # independent reading: the status is the first token after the closing quote of the request
    return int(line.rsplit('" ', 1)[1].split()[0]) if line.count('"') == 2 else int(line.split('" ', 1)[1].split()[0])


def test_apache_access_sample(settings, samples_dir, tmp_path):
    path = samples_dir / "elastic_apache_access" / "apache_logs"
    parsed = parse_sample(settings, tmp_path, path, "apache")
    assert_accounted(parsed, path)
    assert parsed.report.parsed == 10000 and parsed.report.quarantined_total == 0
    lines = text_lines(path)
    expected = Counter(int(l.split('" ', 1)[1].split()[0]) for l in lines)
    got = Counter(d["http"]["response"]["status_code"] for d in parsed.docs.values())
    assert got == expected
    assert parsed.count(event__outcome="failure") == sum(n for code, n in expected.items() if code >= 400)
    d = parsed.flat(1)
    assert d["@timestamp"] == "2015-05-17T10:05:03.000000Z"
    assert d["event.dataset"] == "apache.access" and d["source.ip"] == "83.149.9.216"
    assert d["http.request.method"] == "GET"
    assert d["url.path"] == "/presentations/logstash-monitorama-2013/images/kibana-search.png"
    assert d["http.response.status_code"] == 200 and d["http.response.bytes"] == 203023
    assert d["http.request.referrer"] == "http://semicomplete.com/presentations/logstash-monitorama-2013/"
    assert d["user_agent.original"].startswith("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)")


def test_apache_error_lines_fail2ban(settings, samples_dir, tmp_path):
    path = samples_dir / "fail2ban" / "apache-auth.log"
    parsed = parse_sample(settings, tmp_path, path, "apache", year=2017)
    assert_accounted(parsed, path)
    assert parsed.report.quarantined_total == 0
    lines = text_lines(path)
    assert all(d["event"]["dataset"] == "apache.error" for d in parsed.docs.values())
    assert parsed.count(event__action="access_denied") == sum("client denied by server configuration" in l for l in lines)
    d = parsed.flat(3)  # [Thu Jul 11 01:21:43 2013] [error] [client 194.228.20.113] user dsfasdf not found: /
    assert d["@timestamp"] == "2013-07-11T01:21:43.000000Z"
    assert (d["event.action"], d["user.name"], d["source.ip"]) == ("user_not_found", "dsfasdf", "194.228.20.113")
    d = parsed.flat(18)  # [client [2001:db8::80da:af6b:8b2c]:51548] ... Authorization of user test-ipv6 ...
    assert d["source.ip"] == "2001:db8::80da:af6b:8b2c" and d["source.port"] == 51548
    assert d["event.action"] == "authorization_failure" and d["user.name"] == "test-ipv6"
    assert d["error.code"] == "AH01637" and d["apache.error.module"] == "authz_owner"
    botsearch = samples_dir / "fail2ban" / "apache-botsearch.log"
    parsed = parse_sample(settings, tmp_path / "b", botsearch, "apache", year=2017)
    assert_accounted(parsed, botsearch)
    assert parsed.count(event__action="file_not_found") == sum("File does not exist" in l for l in text_lines(botsearch))


def test_nginx_samples(settings, samples_dir, tmp_path):
    auth = samples_dir / "fail2ban" / "nginx-http-auth.log"
    parsed = parse_sample(settings, tmp_path, auth, "nginx")
    assert_accounted(parsed, auth)
    lines = text_lines(auth)
    assert parsed.count(event__action="password_mismatch") == sum("password mismatch" in l for l in lines)
    d = parsed.flat(1)
    assert d["@timestamp"] == "2012-04-09T11:53:29.000000Z" and d["event.dataset"] == "nginx.error"
    assert (d["event.action"], d["user.name"], d["source.ip"]) == ("user_not_found", "xyz", "192.0.43.10")
    bots = samples_dir / "fail2ban" / "nginx-botsearch.log"
    parsed = parse_sample(settings, tmp_path / "b", bots, "nginx")
    assert_accounted(parsed, bots)
    access = [l for l in text_lines(bots) if " - " in l.split("[")[0]]
    assert parsed.count(event__dataset="nginx.access") == len(access)
    d = parsed.flat(1)
    assert d["@timestamp"] == "2015-01-20T18:53:28.000000Z"  # +0100 -> UTC
    assert d["http.response.status_code"] == 404 and d["url.path"] == "//phpMyAdmin-2.8.2.3/scripts/setup.php"


def test_tomcat_sample_quarantines_1970_and_keeps_invalid_utf8_flagged(settings, samples_dir, tmp_path):
    path = samples_dir / "evtx_attack_samples" / "tomcat_web_attack_access_log.txt"
    parsed = parse_sample(settings, tmp_path, path, "tomcat")
    assert_accounted(parsed, path)
    raws = raw_lines(path)
    bad_utf8 = []
    for i, raw in enumerate(raws, 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_utf8.append(i)
    year_1970 = [i for i, raw in enumerate(raws, 1) if b"/1970:" in raw]
    assert bad_utf8 and year_1970
    reasons = {e["record"]["line"]: e["reason"] for e in parsed.quarantine}
    assert sorted(reasons) == sorted(year_1970)
    for i in year_1970:
        assert reasons[i].startswith("timestamp before 2000")
    assert parsed.report.quarantined == {"timestamp before 2000": len(year_1970)}
    assert parsed.report.replaced_utf8 == len(bad_utf8)
    # invalid UTF-8 lines are decoded with replacement, tagged, and their exact bytes kept escaped
    for i in bad_utf8:
        d = parsed.flat(i)
        assert d["tags"] == ["invalid_utf8"] and "\ufffd" in d["message"]
        assert d["event.original"] == raws[i - 1].decode("utf-8", errors="backslashreplace")
        assert "\\x" in d["event.original"]
    entry = parsed.quarantine[0]
    assert entry["area"] == "logs-tomcat" and entry["ref"].endswith(f":{year_1970[0]}")
    texts = text_lines(path)
    assert parsed.count(http__response__status_code=401) == sum('" 401 ' in l for i, l in enumerate(texts, 1)
                                                               if i not in reasons)
    # an attack payload with unescaped quotes inside the request is still one request
    n = next(i for i, l in enumerate(texts, 1) if 'postdata="><script>' in l)
    d = parsed.flat(n)
    assert d["url.original"] == '/WebID/IISWebAgentIF.dll?postdata="><script>foo</script>'
    assert d["http.response.status_code"] == 404 and d["event.dataset"] == "tomcat.access"
