"""summary.html rendering: self-contained (no external resource), escaped, one bar per host, one
heat-map cell per host and day, a day the lake holds only part of marked as partial."""

import datetime as dt
import re

from etl.extracts.summary import SummaryData, day_covers, heat_map_html, render

DAYS = [dt.date(2026, 11, 23), dt.date(2026, 11, 24)]


def sample() -> SummaryData:
    data = SummaryData(dt.datetime(2026, 11, 26, 1, tzinfo=dt.timezone.utc), "Asia/Shanghai", days=DAYS)
    data.cpu_top = [("核心数据库 (db01)", 97.5, 60.0), ("<script>alert(1)</script>", 40.0, 20.0)]
    data.heat_hosts = ["web02", "db01"]
    data.heat = {("web02", DAYS[0]): (100.0, 0, 1440), ("web02", DAYS[1]): (33.3, 960, 1440),
                 ("db01", DAYS[0]): (91.7, 120, 1440)}
    data.findings = [(DAYS[1], "high", 3)]
    data.trades = [(DAYS[1], 12345, 0.9876, 4, 31.25)]
    data.extracts = [("capacity.hyper", {"fact_capacity_daily": 48, "dim_host": 3})]
    return data


def test_summary_is_self_contained_and_escaped():
    text = render(sample())
    assert not re.search(r"(src|href)\s*=", text), "summary must load nothing"
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "核心数据库 (db01)" in text
    assert not re.search(r"\$[a-z_]+", text), "a template field was left unfilled"


def test_bars_and_heat_cells():
    text = render(sample())
    svg = text[text.index("<svg"):text.index("</svg>")]
    assert len(re.findall(r'<rect [^>]*height="18"', svg)) == 2          # one p95 bar per host
    assert "#c0392b" in svg                                             # 97.5% is red
    heat = text[text.index('<table class="heat"'):text.index("</table>", text.index('<table class="heat"'))]
    assert heat.count("<td ") == 4                                      # 2 hosts x 2 days
    assert "db01 2026-11-24: no check data" in heat                     # missing cell says so
    assert "33" in heat and "960 min without" in heat
    assert "12,345" in text and "98.76%" in text and "31.2" in text


def test_empty_summary_says_so():
    text = render(SummaryData(dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc), "UTC"))
    assert "No CPU data" in text and "No availability data" in text and "no days" in text


def test_day_covers_from_the_covered_minutes():
    # Lake days 11-23 and 11-24 UTC seen from Asia/Shanghai: report day 11-23 from 08:00, 11-24
    # whole, 11-25 to 08:00.
    days = [dt.date(2026, 11, 23), dt.date(2026, 11, 24), dt.date(2026, 11, 25)]
    covers = day_covers({days[0]: 960, days[1]: 1440, days[2]: 480}, "Asia/Shanghai", days[0], days[-1])
    assert [c.partial for c in covers.values()] == [True, False, True]
    assert covers[days[0]].held == "from 08:00" and covers[days[2]].held == "to 08:00"
    assert covers[days[2]].minutes == 480 and covers[days[2]].day_minutes == 1440
    # A DST day is 23 hours long: 1380 covered minutes are all of it.
    spring = dt.date(2026, 3, 8)
    assert not day_covers({spring: 1380}, "America/New_York", spring, spring)[spring].partial


def test_partial_day_is_marked_in_the_heat_map():
    data = sample()
    today = DAYS[1]
    data.heat[("web02", today)] = (100.0, 0, 480)
    data.heat[("db01", today)] = (100.0, 0, 480)
    data.day_covers = day_covers({DAYS[0]: 1440, today: 480}, "Asia/Shanghai", DAYS[0], today)
    heat = heat_map_html(data)
    head = heat[heat.index("<thead>"):heat.index("</thead>")]
    assert "11-24*" in head and "to 08:00" in head and "11-23*" not in head
    assert "db01 2026-11-24: up 100.00% of the 480 min of the day in the lake (to 08:00; the day has 1440)" in heat
    assert "partial day" in heat[heat.index("</table>"):]                # the legend explains the mark
    # A full day's cells keep the plain tooltip.
    assert "db01 2026-11-23: up 91.70% of the minutes" in heat
