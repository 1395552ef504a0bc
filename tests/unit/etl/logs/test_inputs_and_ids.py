"""Input handling of the loader (compressed files, files named twice, binary files, invalid
UTF-8, redaction before quarantine, repeated lines) and the content-based document id, on
real-format lines written for the tests. No Elasticsearch: the loader's own parse path."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma
import sys

import pytest

from etl.logs.documents import doc_id
from etl.logs.inputs import LogInput, compression_of, unique_inputs
from etl.logs.load import FileReport, parse_documents
from etl.logs.parsers import ParseContext
from etl.redact import redact
from etl.quarantine import Quarantine, read

AUTH = (b"Mar 29 23:18:20 web1 sshd[6402]: Failed password for root from 198.51.100.7 port 56338 ssh2\n"
        b"Mar 29 23:18:33 web1 sshd[6402]: message repeated 5 times: [ Failed password for root from "
        b"198.51.100.7 port 56338 ssh2]\n"
        b"Mar 29 23:18:40 web1 sshd[6402]: Invalid user admin from 198.51.100.7 port 56340\n")


def _parse(settings, tmp_path, source, fmt="sshd", year=2017, host=None):
    s = dataclasses.replace(settings, quarantine_dir=str(tmp_path / "q"))
    name = source if isinstance(source, str) else source.name
    report = FileReport(name, fmt)
    ctx = ParseContext.build("auth.log", year, "UTC", host)
    with Quarantine(s, f"logs-{fmt}", "t") as q:
        docs = list(parse_documents(source, fmt, ctx, "t", report, q))
        qpath = q.path
    return report, docs, (list(read(qpath)) if qpath.exists() else [])


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_compressed_files_read_like_the_plain_one(settings, tmp_path, suffix, opener):
    plain = tmp_path / "auth.log"
    plain.write_bytes(AUTH)
    packed = tmp_path / f"auth.log.1{suffix}"
    packed.write_bytes(opener(AUTH))
    assert compression_of(packed.read_bytes()[:8]) is not None
    r1, d1, _ = _parse(settings, tmp_path, plain)
    r2, d2, q2 = _parse(settings, tmp_path, packed)
    assert r2.read == 3 and r2.quarantined_total == 0 and not q2
    # rotation: the same lines under another (compressed) name get the same ids
    assert [d[1] for d in d1] == [d[1] for d in d2]


def test_repeated_message_is_n_documents_with_distinct_ids(settings, tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(AUTH)
    report, docs, _ = _parse(settings, tmp_path, path)
    failed = [d for d in docs if d[2]["event"]["action"] == "failed_password"]
    assert len(failed) == 1 + 5  # one plain line + "repeated 5 times"
    assert report.parsed == 3 and report.repeated_extra == 4 and report.datasets["sshd"] == 7
    assert len({d[1] for d in docs}) == len(docs)


def test_ids_differ_by_host_and_equal_lines_at_one_instant_are_kept(settings, tmp_path):
    line = b'192.0.2.1 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl"\n'
    path = tmp_path / "access.log"
    path.write_bytes(line * 3)
    _, a, _ = _parse(settings, tmp_path, path, fmt="apache", host="web1")
    _, b, _ = _parse(settings, tmp_path, path, fmt="apache", host="web2")
    assert len({d[1] for d in a}) == 3  # three equal requests in one second are three documents
    assert not {d[1] for d in a} & {d[1] for d in b}  # equal lines of two hosts never collide
    assert doc_id("apache.access", "h", "2026-11-25T10:00:00.000000Z", b"x") == \
        doc_id("apache.access", "h", "2026-11-25T10:00:00.000000Z", b"x")


def test_invalid_utf8_is_decoded_flagged_and_kept(settings, tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(b"Mar 29 23:18:20 web1 sshd[1]: Invalid user r\xe9mi from 198.51.100.8 port 1\n")
    report, docs, q = _parse(settings, tmp_path, path)
    assert not q and report.replaced_utf8 == 1
    src = docs[0][2]
    assert src["tags"] == ["invalid_utf8"] and src["user"]["name"] == "r\ufffdmi"
    assert src["event"]["original"].endswith("Invalid user r\\xe9mi from 198.51.100.8 port 1")


def test_quarantined_raw_line_is_redacted(settings, tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(b"not a syslog line: login user=bob password=Hunter2 https://bob:S3cret@db.example/x\n")
    report, docs, q = _parse(settings, tmp_path, path)
    assert not docs and report.quarantined_total == 1
    raw = q[0]["record"]["raw"]
    assert "Hunter2" not in raw and "S3cret" not in raw and "password=***" in raw
    assert redact("PWD=/home/bob ; USER=root ; COMMAND=/bin/ls") == "PWD=/home/bob ; USER=root ; COMMAND=/bin/ls"
    # what the dovecot parser masks in the document is masked in the quarantine too
    assert redact("auth: Info: passwd-file(bob,192.0.2.1): Password mismatch (given password: Hunter2)") == \
        "auth: Info: passwd-file(bob,192.0.2.1): Password mismatch (given password: ***)"


def test_files_given_twice_are_read_once_and_missing_ones_named(tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(AUTH)
    link = tmp_path / "link.log"
    link.symlink_to(path)
    inputs = unique_inputs([path, str(path), link, "-", "-"])
    assert [i.name for i in inputs] == [str(path), "-"]
    from etl.errors import SourceError

    with pytest.raises(SourceError, match="does not exist"):
        unique_inputs([tmp_path / "nope.log"])


def test_stdin_is_sniffed_then_read_whole(settings, tmp_path, monkeypatch):
    fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(AUTH))))
    monkeypatch.setattr(sys, "stdin", fake)
    source = LogInput("-")
    from etl.logs.load import resolve_format

    assert resolve_format("auto", source) == "sshd"
    report, docs, _ = _parse(settings, tmp_path, source)
    assert report.read == 3 and len(docs) == 7 and source.compression == "gzip"


def test_nothing_usable_reasons():
    r = FileReport("x", "sshd", read=4, skipped=1)
    r.quarantined["no syslog timestamp at line start"] = 3
    assert "all 3 non-comment lines quarantined" in r.nothing_usable()
    assert FileReport("x", "sshd").nothing_usable() == "the file is empty"
    assert FileReport("x", "sshd", refused="binary data").nothing_usable() == "binary data"
    assert FileReport("x", "sshd", read=2, loaded=1).nothing_usable() is None
