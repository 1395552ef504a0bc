"""Shared by the test_parse_* files: parse one real sample through the loader's own parse path
(no Elasticsearch) and read the same file independently for the expected numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from etl.logs.load import FileReport, parse_documents
from etl.logs.parsers import ParseContext
from etl.quarantine import Quarantine, read


@dataclasses.dataclass
class Parsed:
    report: FileReport
    docs: dict            # line number -> flat-ish nested _source
    quarantine: list      # quarantine entries (dicts)

    def flat(self, line_no: int) -> dict:
        return flatten(self.docs[line_no])

    def count(self, **fields) -> int:
        return sum(1 for d in self.docs.values() if all(flatten(d).get(k.replace("__", ".")) == v for k, v in fields.items()))


def flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_sample(settings, tmp_path: Path, path: Path, fmt: str, year=None, tz="UTC", host=None) -> Parsed:
    s = dataclasses.replace(settings, quarantine_dir=str(tmp_path / "quarantine"))
    report = FileReport(str(path), fmt)
    ctx = ParseContext.build(path.name, year, tz, host)
    with Quarantine(s, f"logs-{fmt}", "test") as q:
        docs = {src["log"]["offset"]: src for _index, _id, src, _ref, _raw in
                parse_documents(path, fmt, ctx, "t", report, q)}
        qpath = q.path
    entries = list(read(qpath)) if qpath.exists() else []
    return Parsed(report, docs, entries)


def raw_lines(path: Path) -> list[bytes]:
    """The file's lines as bytes, split independently of the loader (splitlines keeps \\r out)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def text_lines(path: Path) -> list[str]:
    return [line.decode("utf-8", errors="replace") for line in raw_lines(path)]


def assert_accounted(parsed: Parsed, path: Path) -> None:
    r = parsed.report
    total = len(raw_lines(path))
    assert r.read == total
    assert r.parsed + r.skipped + r.quarantined_total == total
    assert len(parsed.docs) == r.parsed
    assert len(parsed.quarantine) == r.quarantined_total
