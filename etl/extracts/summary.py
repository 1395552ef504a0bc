"""summary.html next to the extracts, for people who do not open Tableau: top hosts by daily p95
CPU (SVG bars), an availability heat map host x day (HTML grid), trades per day, findings per day
and severity, and the extract files with their row counts. Read from the .hyper files themselves, so it shows exactly
what Tableau shows. Self-contained: inline SVG and CSS, no script, no font or CDN download."""

from __future__ import annotations

import datetime as dt
import html
import string
from dataclasses import dataclass, field
from pathlib import Path

from etl.config import Settings
from etl.extracts.periods import report_day_window, zone

TEMPLATE = Path(__file__).resolve().parent / "templates" / "summary.html"
TOP_N = 10
DAYS = 14


@dataclass(frozen=True)
class DayCover:
    """How much of a report day the lake held when the extract was built: today's column, or the
    first day after an expiry, holds only the compacted part, and its 100% is not a full day's."""
    minutes: int        # minutes of the day inside the lake's published days
    day_minutes: int    # the day's length (23 or 25 hours on a DST change)
    held: str = ""      # "to 08:00" / "from 08:00" (report time), "" when the side is not known

    @property
    def partial(self) -> bool:
        return self.minutes < self.day_minutes

    def span(self) -> str:
        side = f", {self.held}" if self.held else ""
        return f"{self.minutes} of {self.day_minutes} min{side}"

    def text(self) -> str:
        return f"the lake holds {self.span()}"


@dataclass
class SummaryData:
    generated_utc: dt.datetime
    tz: str
    days: list[dt.date] = field(default_factory=list)
    extracts: list[tuple[str, dict[str, int]]] = field(default_factory=list)   # (file, table -> rows)
    cpu_top: list[tuple[str, float, float]] = field(default_factory=list)     # (host label, max p95, avg)
    # (host label, day) -> (% up, no-data min, minutes of the day the figure covers)
    heat: dict[tuple[str, dt.date], tuple[float | None, int, int]] = field(default_factory=dict)
    heat_hosts: list[str] = field(default_factory=list)
    day_covers: dict[dt.date, DayCover] = field(default_factory=dict)   # days of the heat map
    findings: list[tuple[dt.date, str, int]] = field(default_factory=list)    # (day, severity, findings)
    trades: list[tuple[dt.date, int, float | None, int, float | None]] = field(default_factory=list)
    # (day, volume, success rate, SLA breaches, worst minute p95 ms)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def cpu_bars_svg(rows: list[tuple[str, float, float]]) -> str:
    if not rows:
        return '<p class="empty">No CPU data for these days.</p>'
    label_w, bar_w, row_h = 220, 420, 26
    scale = max(100.0, max(p for _, p, _ in rows))
    height = row_h * len(rows) + 24
    parts = [f'<svg class="bars" role="img" aria-label="Top hosts by p95 CPU" width="{label_w + bar_w + 70}" '
             f'height="{height}" viewBox="0 0 {label_w + bar_w + 70} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, p95, avg) in enumerate(rows):
        y = i * row_h
        w_p95, w_avg = bar_w * p95 / scale, bar_w * avg / scale
        color = "#c0392b" if p95 >= 90 else "#e67e22" if p95 >= 75 else "#2e86c1"
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{_e(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{w_p95:.1f}" height="18" fill="{color}">'
                     f'<title>{_e(label)}: p95 {p95:.1f}%, avg {avg:.1f}%</title></rect>')
        parts.append(f'<rect x="{label_w}" y="{y + 10}" width="{w_avg:.1f}" height="6" fill="#ffffff" opacity="0.6"/>')
        parts.append(f'<text x="{label_w + w_p95 + 6:.1f}" y="{y + 17}">{p95:.1f}%</text>')
    axis_y = row_h * len(rows) + 4
    for pct in (0, 25, 50, 75, 100):
        x = label_w + bar_w * pct / scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{axis_y}" stroke="#ccc" stroke-dasharray="2,3"/>')
        parts.append(f'<text class="axis" x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{pct}%</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _heat_color(pct: float | None) -> str:
    if pct is None:
        return "#e5e7eb"
    if pct >= 99.9:
        return "#1e8449"
    if pct >= 99:
        return "#82e0aa"
    if pct >= 95:
        return "#f7dc6f"
    if pct >= 80:
        return "#f0b27a"
    return "#e74c3c"


def day_covers(covered: dict[dt.date, float], tz: str, first: dt.date | None = None,
               last: dt.date | None = None) -> dict[dt.date, DayCover]:
    """Covered minutes per report day (from the facts) -> DayCover. [first, last]: the days the
    extract has rows for. The lake covers one contiguous span, so a partial day after the first
    one lacks its end and one before the last lacks its start."""
    out = {}
    for day, minutes in covered.items():
        window = report_day_window(day, tz)
        full = round(window.duration.total_seconds() / 60)
        held_min = min(full, round(minutes))
        held = ""
        if 0 < held_min < full:
            if first is not None and day > first:
                held = f"to {(window.start + dt.timedelta(minutes=held_min)).astimezone(zone(tz)):%H:%M}"
            elif last is not None and day < last:
                held = f"from {(window.end - dt.timedelta(minutes=held_min)).astimezone(zone(tz)):%H:%M}"
        out[day] = DayCover(held_min, full, held)
    return out


def _heat_head(day: dt.date, cover: DayCover | None) -> str:
    if cover is None or not cover.partial:
        return f'<th title="{day.isoformat()}">{day:%m-%d}</th>'
    tip = f"{day.isoformat()}: partial day, {cover.text()}"
    return (f'<th class="partial" title="{_e(tip)}">{day:%m-%d}*'
            f'<br><small>{_e(cover.held or "partial")}</small></th>')


def heat_map_html(data: SummaryData) -> str:
    if not data.heat_hosts:
        return '<p class="empty">No availability data for these days.</p>'
    covers = {d: c for d, c in data.day_covers.items() if d in data.days}
    head = "".join(_heat_head(d, covers.get(d)) for d in data.days)
    rows = []
    for host in data.heat_hosts:
        cells = []
        for day in data.days:
            pct, missing, minutes = data.heat.get((host, day), (None, 0, 0))
            cover = covers.get(day)
            partial = cover is not None and cover.partial
            text = "" if pct is None else f"{pct:.0f}" if pct < 99.95 else ""
            if pct is None:
                tip = f"{host} {day}: no check data"
            else:
                span = (f"the {minutes} min of the day in the lake ({cover.held + '; ' if cover.held else ''}"
                        f"the day has {cover.day_minutes})" if partial else "the minutes")
                tip = (f"{host} {day}: up {pct:.2f}% of {span} (data and checks up), "
                       f"{missing} min without data")
            cls = ' class="partial"' if partial else ""
            cells.append(f'<td{cls} style="background:{_heat_color(pct)}" title="{_e(tip)}">{text}</td>')
        rows.append(f'<tr><th class="host">{_e(host)}</th>{"".join(cells)}</tr>')
    legend = "".join(f'<span><i style="background:{_heat_color(v)}"></i>{t}</span>' for v, t in
                     ((100, "100%"), (99.5, "≥99%"), (97, "≥95%"), (90, "≥80%"), (50, "<80%"), (None, "no data")))
    partial_days = [(d, c) for d, c in sorted(covers.items()) if c.partial]
    if partial_days:
        which = "; ".join(f"{d:%m-%d}: {c.span()}" for d, c in partial_days)
        legend += (f'<div class="partial-note">* partial day: the lake holds only part of it (not compacted '
                   f'yet, or expired), its figures cover that part and nothing outside it: {_e(which)}</div>')
    return (f'<table class="heat"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<div class="legend">{legend}</div>')


def findings_html(data: SummaryData) -> str:
    if not data.findings:
        return '<p class="empty">No log-analysis findings for these days.</p>'
    severities = sorted({s for _, s, _ in data.findings})
    counts = {(d, s): n for d, s, n in data.findings}
    days = sorted({d for d, _, _ in data.findings})
    head = "".join(f"<th>{_e(s or '(none)')}</th>" for s in severities)
    body = "".join(f"<tr><th>{d}</th>" + "".join(f"<td>{counts.get((d, s), '')}</td>" for s in severities) + "</tr>"
                   for d in days)
    return f'<table class="plain"><thead><tr><th>day</th>{head}</tr></thead><tbody>{body}</tbody></table>'


def trades_html(data: SummaryData) -> str:
    if not data.trades:
        return '<p class="empty">No trade metrics for these days.</p>'
    body = "".join(
        f"<tr><th>{d}</th><td>{volume:,}</td><td>{'' if rate is None else f'{rate:.2%}'}</td>"
        f"<td>{breaches:,}</td><td>{'' if worst is None else f'{worst:.1f}'}</td></tr>"
        for d, volume, rate, breaches, worst in data.trades)
    return ('<table class="plain"><thead><tr><th>day</th><th>trades</th><th>success rate</th>'
            f'<th>SLA breaches</th><th>worst minute p95 (ms)</th></tr></thead><tbody>{body}</tbody></table>')


def extracts_html(data: SummaryData) -> str:
    rows = []
    for name, counts in data.extracts:
        facts = ", ".join(f"{_e(t)} {n:,}" for t, n in counts.items() if t.startswith("fact_"))
        dims = ", ".join(f"{_e(t)} {n:,}" for t, n in counts.items() if not t.startswith("fact_"))
        rows.append(f"<tr><td>{_e(name)}</td><td>{facts}</td><td>{dims}</td></tr>")
    return ('<table class="plain"><thead><tr><th>extract</th><th>fact rows</th><th>dimension rows</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render(data: SummaryData) -> str:
    span = f"{data.days[0]} to {data.days[-1]}" if data.days else "no days"
    return string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title="monetl report summary",
        span=_e(span), tz=_e(data.tz), generated=_e(f"{data.generated_utc:%Y-%m-%d %H:%M} UTC"),
        top_n=len(data.cpu_top), cpu_bars=cpu_bars_svg(data.cpu_top), heat_map=heat_map_html(data),
        findings=findings_html(data), trades=trades_html(data), extracts=extracts_html(data))


def _host_label(host: str, name: str | None) -> str:
    return host if not name or name == host else f"{name} ({host})"


def collect(settings: Settings, days: list[dt.date] | None = None) -> SummaryData:
    """Read the summary's numbers from the .hyper files in settings.extracts_dir."""
    from etl.extracts.build import extracts_dir
    from etl.extracts.hyper_store import hyper_process, open_readers, qualified

    folder = extracts_dir(settings)
    data = SummaryData(dt.datetime.now(dt.timezone.utc), settings.report_tz)
    paths = {p.stem: p for p in sorted(folder.glob("*.hyper"))}
    with hyper_process() as process, open_readers(process, paths) as files:
        def read_query(_process, conn, sql):
            return conn.execute_list_query(sql)

        for name, path in paths.items():
            tables = [r[0] for r in read_query(process, files[name],
                      "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'Extract' ORDER BY 1")]
            counts = {t: read_query(process, files[name], f"SELECT count(*) FROM {qualified(t)}")[0][0]
                      for t in tables}
            data.extracts.append((path.name, dict(sorted(counts.items(), key=lambda kv: (not kv[0].startswith("fact_"), kv[0])))))
        if days is None:
            newest = oldest = None
            for name in ("capacity", "availability"):
                if name in files:
                    fact = qualified(f"fact_{name}_daily")
                    low, high = read_query(process, files[name], f"SELECT min(date_key), max(date_key) FROM {fact}")[0]
                    if high is not None:
                        low, high = dt.date(low.year, low.month, low.day), dt.date(high.year, high.month, high.day)
                        newest = max(newest, high) if newest else high
                        oldest = min(oldest, low) if oldest else low
            # The last DAYS report days that have data, newest last.
            days = ([newest - dt.timedelta(days=i) for i in range(DAYS - 1, -1, -1)
                     if newest - dt.timedelta(days=i) >= oldest] if newest else [])
        data.days = sorted(days)
        if not data.days:
            return data
        between = (f"f.date_key >= DATE '{data.days[0].isoformat()}' "
                   f"AND f.date_key <= DATE '{data.days[-1].isoformat()}'")
        if "capacity" in files:
            rows = read_query(process, files["capacity"], f"""
                SELECT h.host, h.host_name, max(f.p95_value), avg(f.avg_value)
                FROM {qualified('fact_capacity_daily')} f
                JOIN {qualified('dim_item')} i ON i.item_key = f.item_key
                JOIN {qualified('dim_host')} h ON h.host_key = f.host_key
                WHERE i.metric = 'cpu_util_pct' AND {between} AND f.p95_value IS NOT NULL
                GROUP BY h.host, h.host_name ORDER BY 3 DESC, 1 LIMIT {TOP_N}""")
            data.cpu_top = [(_host_label(h, n), float(p), float(a or 0)) for h, n, p, a in rows]
        if "availability" in files:
            # Per host and day the worst of its items (a host is as reachable as its worst check): the
            # share of the day an item had data, times its up_ratio for a 0/1 check (icmpping is 0
            # while the host is down, and the agent's items are silent then).
            rows = read_query(process, files["availability"], f"""
                SELECT h.host, h.host_name, f.date_key,
                       min(f.minutes_with_data * 100.0 / nullif(f.minutes_with_data + f.no_data_minutes, 0)
                           * coalesce(f.up_ratio, 1)),
                       max(f.no_data_minutes),
                       max(f.minutes_with_data + f.no_data_minutes)
                FROM {qualified('fact_availability_daily')} f
                JOIN {qualified('dim_host')} h ON h.host_key = f.host_key
                WHERE {between} GROUP BY h.host, h.host_name, f.date_key""")
            labels = {}
            # Minutes of each day the facts were computed over (period_minutes: the part of the
            # day inside the lake's published days), to tell a partial day from a full one.
            covered: dict[dt.date, float] = {}
            for host, name, day, pct, missing, minutes in rows:
                label = labels.setdefault(host, _host_label(host, name))
                day = dt.date(day.year, day.month, day.day)
                data.heat[(label, day)] = (None if pct is None else float(pct), int(missing or 0), int(minutes or 0))
                covered[day] = max(covered.get(day, 0.0), float(minutes or 0))
            low, high = read_query(process, files["availability"], f"SELECT min(date_key), max(date_key) "
                                   f"FROM {qualified('fact_availability_daily')}")[0]
            data.day_covers = day_covers(covered, data.tz,
                                         None if low is None else dt.date(low.year, low.month, low.day),
                                         None if high is None else dt.date(high.year, high.month, high.day))
            # Least available hosts first: they are what the reader is looking for.
            worst = {}
            for (label, _), (pct, _, _) in data.heat.items():
                worst[label] = min(worst.get(label, 101.0), 101.0 if pct is None else pct)
            data.heat_hosts = sorted(worst, key=lambda h: (worst[h], h))
        if "findings" in files:
            rows = read_query(process, files["findings"], f"""
                SELECT f.date_key, f.severity, sum(f.findings) FROM {qualified('fact_findings_daily')} f
                WHERE {between} GROUP BY 1, 2 ORDER BY 1, 2""")
            data.findings = [(dt.date(d.year, d.month, d.day), s, int(n)) for d, s, n in rows]
        if "trade_perf" in files:
            rows = read_query(process, files["trade_perf"], f"""
                SELECT f.date_key, sum(f.volume), sum(f.success) * 1.0 / nullif(sum(f.volume), 0),
                       sum(f.sla_breaches), max(f.worst_minute_p95_ms)
                FROM {qualified('fact_trade_perf_daily')} f WHERE {between} GROUP BY 1 ORDER BY 1""")
            data.trades = [(dt.date(d.year, d.month, d.day), int(v or 0), None if r is None else float(r),
                            int(b or 0), None if w is None else float(w)) for d, v, r, b, w in rows]
    return data


def write_summary(settings: Settings, days: list[dt.date] | None = None) -> Path:
    """Write summary.html next to the extracts (atomically) and return its path."""
    from etl.extracts.build import extracts_dir

    folder = extracts_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    text = render(collect(settings, days))
    path = folder / "summary.html"
    tmp = folder / ".summary.html.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
