"""Trading-gateway format: parser, seeded generator, and the loader's pure helpers (ids, index
names, nesting, format sniffing, the year rule)."""

from __future__ import annotations

from collections import Counter

import pytest

from etl.errors import ConfigError
from etl.logs.documents import doc_id, logs_index, nest
from etl.logs.load import load_files
from etl.logs.parsers import ParseContext, make_parser, sniff
from etl.logs.parsers.base import LineError
from etl.logs.tradegen import generate_file, generate_lines
from logs_parse_support import assert_accounted, parse_sample, text_lines

LINE = ("2026-11-25 09:30:00.123456 +0800 GW01 REQ type=NEW_ORDER order_id=GW0120261125000000001 branch=SH001 "
        "channel=APP account=A10012345 latency_us=812 result=OK code=0")


def test_trade_line_fields():
    d = make_parser("trade", ParseContext.build("t")).parse(LINE)
    assert d == {"@timestamp": "2026-11-25T01:30:00.123456Z", "host.name": "GW01", "event.action": "new_order",
                 "event.outcome": "success", "event.duration": 812_000, "trade.type": "NEW_ORDER",
                 "trade.order_id": "GW0120261125000000001", "trade.branch": "SH001", "trade.channel": "APP",
                 "trade.account": "A10012345", "trade.result": "OK", "trade.code": 0, "trade.gateway": "GW01"}
    timeout = LINE.replace("result=OK code=0", "result=TIMEOUT code=9001")
    assert make_parser("trade", ParseContext.build("t")).parse(timeout)["event.outcome"] == "failure"
    with pytest.raises(LineError):
        make_parser("trade", ParseContext.build("t")).parse(LINE.replace("type=NEW_ORDER", "type=BOGUS"))


def test_impossible_zone_offset_is_a_line_error_with_the_offset_named():
    with pytest.raises(LineError, match="impossible time-zone offset '\\+9999'"):
        make_parser("trade", ParseContext.build("t")).parse(LINE.replace("+0800", "+9999"))


def test_generator_is_seeded_labelled_and_parseable(settings, tmp_path):
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    n = generate_file(a, "2026-11-25", "2026-11-26", seed=5, rate=2.0, gateways=2)
    generate_file(b, "2026-11-25", "2026-11-26", seed=5, rate=2.0, gateways=2)
    generate_file(c, "2026-11-25", "2026-11-26", seed=6, rate=2.0, gateways=2)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    lines = text_lines(a)
    assert lines[0].startswith("# SYNTHETIC") and len(lines) == n + 2
    parsed = parse_sample(settings, tmp_path / "q", a, "trade")
    assert_accounted(parsed, a)
    assert parsed.report.parsed == n and parsed.report.skipped == 2 and parsed.report.quarantined_total == 0
    docs = [parsed.flat(i) for i in sorted(parsed.docs)]
    assert [d["@timestamp"] for d in docs] == sorted(d["@timestamp"] for d in docs)
    assert set(d["trade.type"] for d in docs) == {"NEW_ORDER", "CANCEL", "QUERY", "QUOTE"}
    results = Counter(d["trade.result"] for d in docs)
    assert results["OK"] > 0.9 * n and results["REJECT"] > 0 and results["TIMEOUT"] >= 0
    # only continuous-trading hours (Asia/Shanghai 09:30-11:30, 13:00-15:00 = 01:30-03:30, 05:00-07:00 UTC)
    hours = Counter(d["@timestamp"][11:16] for d in docs)
    assert all("01:30" <= h < "03:30" or "05:00" <= h < "07:00" for h in hours)
    # bursts at both opens: the first 5 minutes after an open are busier than 5 minutes an hour later
    def minutes(a, b):
        return sum(v for h, v in hours.items() if a <= h < b)
    assert minutes("01:30", "01:35") > 1.5 * minutes("02:30", "02:35")
    assert minutes("05:00", "05:05") > 1.5 * minutes("06:00", "06:05")
    # latency: NEW_ORDER slower than QUOTE (medians of OK requests)
    def median(kind):
        xs = sorted(d["event.duration"] for d in docs if d["trade.type"] == kind and d["trade.result"] == "OK")
        return xs[len(xs) // 2]
    assert median("NEW_ORDER") > 2 * median("QUOTE")


def test_generator_skips_weekends_and_caps_lines():
    lines = list(generate_lines("2026-11-28", "2026-11-30", seed=1, rate=1.0))  # Sat, Sun
    assert all(line.startswith("#") for line in lines)
    assert len([l for l in generate_lines("2026-11-25", "2026-11-26", seed=1, max_lines=100) if not l.startswith("#")]) == 100
    with pytest.raises(ConfigError):
        list(generate_lines("2026-11-26", "2026-11-25"))


def test_ids_indices_and_nesting():
    a = doc_id("sshd", "auth.log", 7, b"line")
    assert a == doc_id("sshd", "auth.log", 7, b"line")
    assert len({a, doc_id("sshd", "auth.log", 8, b"line"), doc_id("sshd", "other.log", 7, b"line"),
                doc_id("postfix", "auth.log", 7, b"line"), doc_id("sshd", "auth.log", 7, b"line2")}) == 5
    assert logs_index("monetl", "apache.access", "2015-05-17T10:05:03.000000Z") == "monetl-logs-apache-access-2015.05"
    assert nest({"@timestamp": "t", "event.action": "a", "event.outcome": "o", "source.ip": "1.2.3.4"}) == {
        "@timestamp": "t", "event": {"action": "a", "outcome": "o"}, "source": {"ip": "1.2.3.4"}}


def test_sniff(samples_dir):
    def head(rel):
        return text_lines(samples_dir / rel)[:60]
    assert sniff(head("elastic_auth_log/auth.log")) == "sshd"
    assert sniff(head("fail2ban/postfix.log")) == "postfix"
    assert sniff(head("lnav_iis_w3c/logfile_w3c_big.0")) == "iis"
    assert sniff(head("lnav_haproxy/logfile_haproxy.0")) == "haproxy"
    assert sniff(head("evtx_attack_samples/kerberos_pwd_spray_4771.jsonl")) == "winsec"
    assert sniff([LINE]) == "trade"
    assert sniff(["hello", "world"]) is None


def test_syslog_formats_refuse_to_run_without_a_year(settings, samples_dir):
    s = __import__("dataclasses").replace(settings, log_year=None)
    with pytest.raises(ConfigError, match="MONETL_LOG_YEAR"):
        load_files(s, "sshd", [samples_dir / "fail2ban" / "sshd.log"], client=object())


def test_unknown_zone_is_a_config_error():
    with pytest.raises(ConfigError, match="time zone"):
        ParseContext.build("f", 2020, "Mars/Olympus")


def test_a_parser_bug_on_one_line_is_quarantined_not_fatal(settings, tmp_path, monkeypatch):
    from etl.logs.parsers.trade import TradeParser

    path = tmp_path / "t.log"
    path.write_text("\n".join([LINE, LINE.replace("GW01 REQ", "GW02 REQ"), LINE]) + "\n")
    real = TradeParser.parse

    def flaky(self, line):
        if "GW02" in line:
            raise IndexError("boom")
        return real(self, line)

    monkeypatch.setattr(TradeParser, "parse", flaky)
    parsed = parse_sample(settings, tmp_path, path, "trade")
    assert_accounted(parsed, path)
    assert sorted(parsed.docs) == [1, 3]
    assert parsed.quarantine[0]["reason"] == "parser error: IndexError: boom" and parsed.quarantine[0]["record"]["line"] == 2
