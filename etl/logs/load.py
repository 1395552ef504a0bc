"""Load log files into Elasticsearch: read bytes, decode per line, parse into ECS documents,
stream them with `elasticsearch.helpers.streaming_bulk` (bounded memory, one bulk request per
chunk, never a client call per line) into `{prefix}-logs-{dataset}-{YYYY.MM}`.

Every line is accounted for: read == parsed + skipped (by design: comments, headers, blank
lines) + quarantined (undecodable bytes, unparseable lines, stamps before 2000), and
parsed == loaded + load-failed (the bulk item's error, also quarantined). Quarantine entries
name file:line, the reason and the raw line (bytes escaped), in area `logs-<format>`.
Ids are deterministic (etl.logs.documents.doc_id): loading a file again duplicates nothing."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from etl.config import Settings
from etl.errors import ConfigError, MonetlError, SourceError, StoreError
from etl.logs.attempts import pair_attempts
from etl.logs.documents import doc_id, logs_index, logs_index_pattern, nest
from etl.logs.inputs import LogInput, unique_inputs
from etl.logs.parsers import LineError, ParseContext, make_parser, parser_class, sniff
from etl.redact import redact
from etl.quarantine import Quarantine

log = logging.getLogger(__name__)
CHUNK_DOCS = 2000
CHUNK_BYTES = 8 * 1024 * 1024


@dataclass
class FileReport:
    path: str
    fmt: str
    read: int = 0
    parsed: int = 0
    skipped: int = 0
    loaded: int = 0
    load_failed: int = 0
    quarantined: Counter = field(default_factory=Counter)
    datasets: Counter = field(default_factory=Counter)
    indices: set = field(default_factory=set)
    repeated_extra: int = 0      # documents beyond one per line ("message repeated N times")
    replaced_utf8: int = 0       # lines decoded with U+FFFD replacements (tagged invalid_utf8)
    refused: str = ""            # why the whole file was not read (binary data)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def line(self) -> str:
        reasons = ", ".join(f"{r}: {n}" for r, n in self.quarantined.most_common()) or "none"
        extra = ""
        if self.repeated_extra:
            extra += f", {self.repeated_extra} more from 'message repeated N times'"
        if self.replaced_utf8:
            extra += f", {self.replaced_utf8} lines with invalid UTF-8 replaced (tag invalid_utf8)"
        return (f"{self.path} [{self.fmt}]: read {self.read}, parsed {self.parsed}, loaded {self.loaded}{extra}, "
                f"skipped-by-design {self.skipped}, quarantined {self.quarantined_total} ({reasons})")

    def nothing_usable(self) -> str | None:
        """Why this file gave no document, or None when it gave at least one."""
        if self.loaded:
            return None
        if self.refused:
            return self.refused
        if self.read == 0:
            return "the file is empty"
        if self.quarantined_total:
            top = ", ".join(f"{r}: {n}" for r, n in self.quarantined.most_common(3))
            if self.quarantined_total == self.read - self.skipped:
                return f"all {self.quarantined_total} non-comment lines quarantined ({top}); wrong --format?"
            return f"no line loaded; {self.quarantined_total} quarantined ({top})"
        if self.load_failed:
            return f"Elasticsearch rejected all {self.load_failed} documents"
        return f"all {self.read} lines are comments or headers"


@dataclass
class LoadReport:
    run_id: str
    files: list[FileReport] = field(default_factory=list)
    quarantine_paths: set = field(default_factory=set)

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    def unusable(self) -> list[tuple[str, str]]:
        """(file, reason) of every file that loaded nothing: the CLI exits 1 on any."""
        return [(f.path, reason) for f in self.files if (reason := f.nothing_usable())]

    def lines(self) -> list[str]:
        out = [f.line() for f in self.files]
        out.append(f"total: read {self.total('read')}, parsed {self.total('parsed')}, loaded {self.total('loaded')}, "
                   f"skipped {self.total('skipped')}, quarantined {self.total('quarantined_total')}")
        for path in sorted(self.quarantine_paths):
            out.append(f"quarantine: {path}")
        return out


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw bytes without the line end) for every line of a plain or
    gzip/bzip2/xz file, bytes untouched."""
    return LogInput(str(path)).lines()


def resolve_format(fmt: str, source: Path | LogInput) -> str:
    if fmt != "auto":
        parser_class(fmt)  # unknown names fail before any file is read
        return fmt
    source = source if isinstance(source, LogInput) else LogInput(str(source))
    found = sniff([raw.decode("utf-8", errors="replace") for raw in source.head()])
    if found is None:
        raise ConfigError(f"{source.name}: cannot tell the log format from its first lines; give --format")
    return found


def _binary(source: LogInput) -> bool:
    """NUL bytes in most of the first lines: an image, a database file, a compressed format we
    cannot read. Such a file is refused whole instead of quarantining every chunk of it (a text
    log may carry a few NULs: a TLS handshake sent to an HTTP port lands in the access log)."""
    head = source.head()
    return bool(head) and sum(1 for raw in head if b"\x00" in raw) * 2 > len(head)


class _Quarantines:
    """One quarantine file per format area (`logs-<format>`) for this run, opened when first used."""

    def __init__(self, settings: Settings, run_id: str):
        self.settings, self.run_id = settings, run_id
        self.open: dict[str, Quarantine] = {}

    def get(self, fmt: str) -> Quarantine:
        if fmt not in self.open:
            self.open[fmt] = Quarantine(self.settings, f"logs-{fmt}", self.run_id)
        return self.open[fmt]

    def close(self) -> set:
        paths = set()
        for q in self.open.values():
            if q.count:
                paths.add(str(q.path))
            q.close()
        return paths


def _reason_key(reason: str) -> str:
    return reason.split(":")[0]


# Equal raw lines at the same instant within a file are told apart by their occurrence number;
# only recent instants are remembered (bounded memory: files are nearly in time order).
_OCCURRENCE_LIMIT = 50_000


def parse_documents(path: Path | LogInput, fmt: str, ctx: ParseContext, prefix: str, report: FileReport,
                    quarantine: Quarantine) -> Iterator[tuple[str, str, dict, str, bytes]]:
    """Yields (index, _id, _source, ref, raw) per document; counts and quarantines the rest.
    A `message repeated N times: [ X ]` line yields N documents of X (event.repeated = N)."""
    source = path if isinstance(path, LogInput) else LogInput(str(path))
    parser = make_parser(fmt, ctx)
    parsed = _parsed_lines(source, parser, fmt, ctx, report, quarantine)
    if parser.dataset == "sshd":  # one count per login attempt where sshd logs it twice
        parsed = pair_attempts(parsed)
    seen: OrderedDict = OrderedDict()
    for flat, raw, ref in parsed:
        timestamp = flat["@timestamp"]
        dataset = flat["event.dataset"]
        index = logs_index(prefix, dataset, timestamp)
        report.indices.add(index)
        host = flat.get("host.name") or ""
        at = seen.get(timestamp)
        if at is None:
            at = seen[timestamp] = {}
            if len(seen) > _OCCURRENCE_LIMIT:
                seen.popitem(last=False)
        occurrence = at.get(raw, 0)
        at[raw] = occurrence + 1
        repeats = flat.get("event.repeated") or 1
        report.datasets[dataset] += repeats
        source_doc = nest(flat)
        yield index, doc_id(dataset, host, timestamp, raw, occurrence), source_doc, ref, raw
        for copy in range(1, repeats):
            report.repeated_extra += 1
            yield index, doc_id(dataset, host, timestamp, raw, f"{occurrence}.{copy}"), source_doc, ref, raw


def _parsed_lines(source: LogInput, parser, fmt: str, ctx: ParseContext, report: FileReport,
                  quarantine: Quarantine) -> Iterator[tuple[dict, bytes, str]]:
    """(flat document, raw line, file:line) per parsed line; counts and quarantines the rest."""
    file_path = source.name
    default_dataset = parser.dataset
    default_host = ctx.host
    for number, raw in source.lines():
        report.read += 1
        ref = f"{file_path}:{number}"
        flags = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Keep the line: U+FFFD where bytes are invalid, the exact bytes escaped in
            # event.original, and a tag, so a search finds every such line.
            text = raw.decode("utf-8", errors="replace")
            flags = raw.decode("utf-8", errors="backslashreplace")
        try:
            flat = parser.parse(text)
        except LineError as exc:
            _quarantine(quarantine, report, raw, exc.reason, ref, "parse", fmt)
            continue
        except MonetlError:
            raise  # a setting is missing (e.g. the year): no line can be read, stop the run
        except Exception as exc:  # a parser bug on one odd line must not stop the file
            _quarantine(quarantine, report, raw, f"parser error: {type(exc).__name__}: {exc}", ref, "parse", fmt)
            continue
        if flat is None:
            report.skipped += 1
            continue
        flat.setdefault("event.dataset", default_dataset)
        if default_host and "host.name" not in flat:
            flat["host.name"] = default_host
        flat["log.file.path"] = file_path
        flat["log.offset"] = number
        flat.setdefault("message", redact(text))
        if flags is not None:
            report.replaced_utf8 += 1
            flat["tags"] = ["invalid_utf8"]
            flat["event.original"] = redact(flags)
        report.parsed += 1
        yield flat, raw, ref


def _quarantine(quarantine: Quarantine, report: FileReport, raw: bytes, reason: str, ref: str, stage: str,
                fmt: str) -> None:
    # Redacted like the document would have been: the quarantine must not keep a password that
    # the index never gets.
    record = {"file": ref.rsplit(":", 1)[0], "line": int(ref.rsplit(":", 1)[1]), "format": fmt,
              "raw": redact(raw.decode("utf-8", errors="backslashreplace"))}
    quarantine.add(record, reason, ref=ref, stage=stage)
    report.quarantined[_reason_key(reason)] += 1


def bulk_load(client, docs: Iterable[tuple[str, str, dict, str, bytes]], report: FileReport,
              quarantine: Quarantine) -> None:
    """Index documents with streaming_bulk; per-item failures go to the quarantine. Results come
    back in action order (no helper-level retries: the transport retries 429/5xx for the whole
    request), so a FIFO of in-flight refs pairs each result with its line."""
    from elasticsearch import helpers

    inflight: deque = deque()

    def actions():
        for index, _id, source, ref, raw in docs:
            inflight.append((ref, raw))
            yield {"_op_type": "index", "_index": index, "_id": _id, "_source": source}

    try:
        for ok, item in helpers.streaming_bulk(client, actions(), chunk_size=CHUNK_DOCS,
                                               max_chunk_bytes=CHUNK_BYTES, raise_on_error=False,
                                               raise_on_exception=True, max_retries=0, yield_ok=True):
            ref, raw = inflight.popleft()
            if ok:
                report.loaded += 1
            else:
                report.load_failed += 1
                error = item.get("index", {}).get("error", {})
                reason = f"rejected by Elasticsearch: {error.get('type', 'error')}: {error.get('reason', '')}"[:500]
                _quarantine(quarantine, report, raw, reason, ref, "load", report.fmt)
    except Exception as exc:
        if isinstance(exc, (ConfigError, SourceError)):
            raise
        raise StoreError(f"bulk load of {report.path} stopped after {report.loaded} documents: "
                         f"{type(exc).__name__}: {str(exc)[:300]}; re-run: loading is idempotent") from exc


def load_files(settings: Settings, fmt: str, files: Iterable[str | Path], year: int | None = None,
               tz: str | None = None, host: str | None = None, run_id: str | None = None,
               client=None) -> LoadReport:
    from etl.logs.template import ensure_template
    from etl.search.client import es_client

    year = year if year is not None else settings.log_year
    tz = tz or settings.log_tz
    run_id = run_id or f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    if fmt != "auto":
        parser_class(fmt)  # an unknown format fails before any file is looked at
    plan = []
    for source in unique_inputs(files):
        if _binary(source):
            plan.append((source, fmt if fmt != "auto" else "unknown",
                         "binary data (NUL bytes in its first lines), not a text log"))
            continue
        chosen = resolve_format(fmt, source)
        if parser_class(chosen).needs_year and year is None:
            raise ConfigError(f"{source.name}: format {chosen} has syslog-style lines without a year; give --year "
                              "or set MONETL_LOG_YEAR (monetl never guesses the year from the current date)")
        plan.append((source, chosen, ""))
    client = client or es_client(settings)
    ensure_template(client, settings.es_index_prefix)
    report = LoadReport(run_id)
    quarantines = _Quarantines(settings, run_id)
    try:
        for source, chosen, refused in plan:
            file_report = FileReport(source.name, chosen, refused=refused)
            report.files.append(file_report)
            if refused:
                log.warning("%s: %s", source.name, refused)
                continue
            ctx = ParseContext.build(source.file_name, year, tz, host)
            q = quarantines.get(chosen)
            docs = parse_documents(source, chosen, ctx, settings.es_index_prefix, file_report, q)
            bulk_load(client, docs, file_report, q)
            log.info("%s", file_report.line())
        datasets = sorted(set().union(*(f.datasets for f in report.files))) if report.files else []
        if datasets:
            # Make the documents searchable now: the jobs and the tests query right after loading.
            # One pattern per dataset keeps the URL short however many months a file spans.
            patterns = ",".join(logs_index_pattern(settings.es_index_prefix, d) for d in datasets)
            client.indices.refresh(index=patterns, ignore_unavailable=True, allow_no_indices=True)
    finally:
        report.quarantine_paths = quarantines.close()
    return report


def samples_dir() -> Path:
    """The real log samples: MONETL_SAMPLES_DIR, else the repository's sibling shared/data/logs."""
    env = os.environ.get("MONETL_SAMPLES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "logs"


# (relative path, format, year for zone-less syslog lines, zone) of every real sample. The auth.log
# is from 2017 (README); fail2ban samples mix years, 2017 is a stand-in documented here.
DEMO_SAMPLES = [
    ("elastic_auth_log/auth.log", "sshd", 2017, "UTC"),
    ("elastic_apache_access/apache_logs", "apache", None, "UTC"),
    ("fail2ban/sshd.log", "sshd", 2017, "UTC"),
    ("fail2ban/apache-auth.log", "apache", 2017, "UTC"),
    ("fail2ban/apache-botsearch.log", "apache", 2017, "UTC"),
    ("fail2ban/nginx-http-auth.log", "nginx", None, "UTC"),
    ("fail2ban/nginx-botsearch.log", "nginx", None, "UTC"),
    ("fail2ban/dovecot.log", "dovecot", 2017, "UTC"),
    ("fail2ban/postfix.log", "postfix", 2017, "UTC"),
    ("fail2ban/sendmail-reject.log", "sendmail", 2017, "UTC"),
    ("fail2ban/sendmail-auth.log", "sendmail", 2017, "UTC"),
    ("fail2ban/exim.log", "exim", None, "UTC"),
    ("fail2ban/exim-spam.log", "exim", None, "UTC"),
    ("evtx_attack_samples/tomcat_web_attack_access_log.txt", "tomcat", None, "UTC"),
    ("evtx_attack_samples/Tunna_rdp_tunnel_IIS.log", "iis", None, "UTC"),
    ("evtx_attack_samples/CA_4624_4625_LogonType2_LogonProc_chrome.jsonl", "winsec", None, "UTC"),
    ("evtx_attack_samples/kerberos_pwd_spray_4771.jsonl", "winsec", None, "UTC"),
    ("lnav_iis_w3c/logfile_w3c_big.0", "iis", None, "UTC"),
    ("lnav_haproxy/logfile_haproxy.0", "haproxy", 2019, "Europe/Berlin"),
]


def load_samples(settings: Settings, root: Path | None = None, run_id: str | None = None,
                 client=None) -> LoadReport:
    root = root or samples_dir()
    if not root.is_dir():
        raise SourceError(f"log samples not found at {root}; set MONETL_SAMPLES_DIR")
    run_id = run_id or f"samples-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    merged = LoadReport(run_id)
    for rel, fmt, year, tz in DEMO_SAMPLES:
        part = load_files(settings, fmt, [root / rel], year=year, tz=tz, run_id=run_id, client=client)
        merged.files.extend(part.files)
        merged.quarantine_paths |= part.quarantine_paths
    return merged


def demo_report_days(now: dt.datetime | None = None) -> list[dt.date]:
    """The demo's report days: yesterday and today (UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return [now.date() - dt.timedelta(days=1), now.date()]


def generate_demo_logs(settings: Settings, now: dt.datetime | None = None) -> list[tuple[str, Path, int | None, int]]:
    """Write the SYNTHETIC current logs of the report days (etl.logs.tradegen, etl.logs.storygen)
    up to `now`: [(format, file, year for syslog stamps, lines)]."""
    from etl.logs import storygen
    from etl.logs.tradegen import generate_file

    now = now or dt.datetime.now(dt.timezone.utc)
    folder = settings.home / "logs" / "generated"
    days = demo_report_days(now)
    out = []
    trade = folder / f"synthetic-trade_gateway-{days[0]:%Y-%m-%d}_{days[-1]:%Y-%m-%d}.log"
    # Gateway days are Shanghai days; the last UTC day's session is the same calendar day there.
    n = generate_file(trade, start=days[0].isoformat(), end=(days[-1] + dt.timedelta(days=1)).isoformat(),
                      seed=20261125, rate=2.0, gateways=2, slow=("10:40", 40, 10.0, 0), weekends=True,
                      until=int(now.timestamp()))
    out.append(("trade", trade, None, n))
    for kind, fmt in (("auth", "sshd"), ("mail", "postfix")):
        for day in days:
            path, lines = storygen.write_day(kind, day, folder, until=now)
            out.append((fmt, path, day.year, lines))
    return out


def run_demo(settings: Settings) -> list[str]:
    """Loads every real sample (years old) plus the SYNTHETIC current logs of the report days
    (trades with a slow spell, an SSH brute force and password spray, a bounce wave); returns
    summary lines."""
    report = load_samples(settings)
    lines = [f"{len(report.files)} real sample files: read {report.total('read')}, loaded {report.total('loaded')}, "
             f"skipped {report.total('skipped')}, quarantined {report.total('quarantined_total')}"]
    from etl.console import Steps

    generated = LoadReport(report.run_id)
    plan = generate_demo_logs(settings)
    progress = Steps("loading", len(plan))
    for fmt, path, year, _ in plan:
        progress.step(path.name)
        part = load_files(settings, fmt, [path], year=year, tz="UTC", run_id=report.run_id)
        generated.files.extend(part.files)
        generated.quarantine_paths |= part.quarantine_paths
    progress.close()
    by_fmt: dict[str, list[FileReport]] = {}
    for f in generated.files:
        by_fmt.setdefault(f.fmt, []).append(f)
    for fmt, files in by_fmt.items():
        lines.append(f"SYNTHETIC {fmt} ({', '.join(Path(f.path).name for f in files)}): "
                     f"{sum(f.loaded for f in files)} loaded, {sum(f.quarantined_total for f in files)} quarantined")
    lines.append(f"indices: {settings.es_index_prefix}-logs-*; total loaded "
                 f"{report.total('loaded') + generated.total('loaded')}, quarantined "
                 f"{report.total('quarantined_total') + generated.total('quarantined_total')}")
    for path in sorted(report.quarantine_paths | generated.quarantine_paths):
        lines.append(f"quarantine: {path}")
    return lines
