"""Build extracts for report days: read the lake per span, transform, replace the span in the .hyper.

Re-running a day replaces exactly that day's rows (and the week/month rows containing it), so a
re-run never duplicates anything; `fresh=True` starts the file over (after a definition change)."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from etl.config import Settings
from etl.extracts import model, source
from etl.extracts.definition import DEFINITIONS_DIR, Definition, Fact, select
from etl.extracts.periods import day_range, span_window, spans
from etl.extracts.transform import ARROW_TYPES, ParquetRows, SpanFrame, date_dimension
from etl.schema import point_schema
from etl.window import Window
from etl.health.push import reports

log = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    name: str
    path: Path
    days: list[dt.date]
    rows: dict[str, int] = field(default_factory=dict)      # table -> rows in the file after the build
    written: dict[str, int] = field(default_factory=dict)   # fact table -> rows inserted by this build

    def line(self) -> str:
        facts = ", ".join(f"{t} {n}" for t, n in self.rows.items() if t.startswith("fact_"))
        span = f"{self.days[0]}..{self.days[-1]}" if self.days else "no days"
        return f"{self.path} ({span}): {facts}"


def extracts_dir(settings: Settings) -> Path:
    return Path(settings.extracts_dir).expanduser()


def coverage(settings: Settings, definition: Definition, dataset: str) -> Window | None:
    """UTC span from the oldest to the end of the newest published lake day of the definition's
    sources: minutes outside it are unknown (not compacted yet, or expired), not 'no data'."""
    if not definition.is_points:
        return None
    days = [d for s in definition.sources for d in source.lake_days(settings, dataset, s)]
    if not days:
        return None
    return Window(min(days), max(days) + dt.timedelta(days=1))


def lake_rows(settings: Settings, definition: Definition, dataset: str, window: Window,
              scratch: Path) -> pa.Table | ParquetRows:
    """Points/rollups as Parquet files for DuckDB (the bulk of the data); findings as Arrow."""
    if definition.is_points:
        files = [f for s in definition.sources
                 for f in source.partition_paths(settings, dataset, s, window.days(), scratch)]
        if dataset == "raw":
            return ParquetRows(files, "clock", window, point_schema())
        from etl.lake.rollup import rollup_schema

        return ParquetRows(files, "bucket", window, rollup_schema())
    columns = [(c.name, ARROW_TYPES[c.type]) for c in definition.input]
    tables = [source.read_findings(settings, job, window, columns) for job in definition.jobs]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def build_extract(settings: Settings, process, definition: Definition, days: list[dt.date],
                  fresh: bool = False) -> ExtractResult:
    tz = settings.report_tz
    path = extracts_dir(settings) / definition.file_name
    result = ExtractResult(definition.name, path, sorted(set(days)))
    by_span: dict[tuple, list[Fact]] = defaultdict(list)
    for fact in definition.facts:
        for span in spans(result.days, fact.grain):
            by_span[(span, fact.dataset)].append(fact)
    dim_tables = model.dimension_tables(definition)
    dim_by_name = {t.name: t for t in dim_tables}
    coverages = {ds: coverage(settings, definition, ds) for _, ds in by_span}
    from etl.extracts.hyper_store import ExtractWriter

    with ExtractWriter(process, path, model.all_tables(definition), fresh=fresh) as writer, \
            tempfile.TemporaryDirectory(prefix="monetl-extract-lake-") as scratch:
        all_days: set[dt.date] = set()
        for (span, dataset), facts in sorted(by_span.items()):
            window = span_window(span, tz).widened(before=dt.timedelta(days=definition.series_lookback_days))
            rows = lake_rows(settings, definition, dataset, window, Path(scratch))
            log.info("extract %s: span %s..%s from %s: %s", definition.name, span[0], span[1], dataset,
                     f"{len(rows.files)} files" if isinstance(rows, ParquetRows) else f"{rows.num_rows} rows")
            with SpanFrame(definition, rows, tz, coverages[dataset]) as frame:
                dims = frame.dims(list(dim_by_name))
                if "dim_host" in dims:
                    hosts = writer.upsert_latest(dim_by_name["dim_host"], dims["dim_host"], "host_key")
                    writer.insert_missing(dim_by_name["dim_host_group"], dims["dim_host_group"], "group_key")
                    writer.replace_children(dim_by_name["bridge_host_group"], dims["bridge_host_group"],
                                            "host_key", hosts)
                if "dim_item" in dims:
                    writer.upsert_latest(dim_by_name["dim_item"], dims["dim_item"], "item_key")
                for fact in facts:
                    inserted = writer.replace_span(model.fact_table(fact), span, frame.fact(fact, span))
                    result.written[fact.table] = result.written.get(fact.table, 0) + inserted
            all_days.update(day_range(*span))
        writer.insert_missing(model.DIM_DATE, date_dimension(sorted(all_days)), "date_key")
        result.rows = writer.counts()
    log.info("extract %s written: %s", definition.name, result.line())
    return result


@reports("extracts")
def build(settings: Settings, names: str | list[str], days: list[dt.date], fresh: bool = False,
          definitions_dir: Path = DEFINITIONS_DIR) -> list[ExtractResult]:
    from etl.extracts.hyper_store import hyper_process

    definitions = select(names, definitions_dir)
    with hyper_process() as process:
        return [build_extract(settings, process, d, days, fresh=fresh) for d in definitions]


def lake_utc_days(settings: Settings, definitions_dir: Path = DEFINITIONS_DIR) -> list[dt.date]:
    """UTC days with published raw points of any source an extract reads, oldest first."""
    from etl.extracts.definition import load_all

    days: set[dt.date] = set()
    for d in load_all(definitions_dir).values():
        for s in d.sources:
            days.update(source.lake_days(settings, "raw", s))
    return sorted(days)


def lake_report_days(settings: Settings, definitions_dir: Path = DEFINITIONS_DIR) -> list[dt.date]:
    """Report-local days covered by the lake's published days (what the demo builds)."""
    from etl.extracts.periods import report_days_touched

    out: set[dt.date] = set()
    for day in lake_utc_days(settings, definitions_dir):
        out.update(report_days_touched(Window.day(day), settings.report_tz))
    return sorted(out)
