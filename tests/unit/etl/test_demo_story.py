"""The demo's SYNTHETIC story as pure functions: the seeded outage and disk fill, the trade
generator's slow spell, the current auth/mail logs (parsed by the real parsers), quiet logging, and
the one-step publish of many findings partitions."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pyarrow as pa

from etl.seed import fleet as f
from etl.seed import generators as g

DAY = dt.date(2026, 12, 1)


def _day_start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp())


def test_outage_rotates_a_fixed_number_of_hosts_per_day():
    fleet = f.load_fleet()
    outage = fleet["incidents"]["outage"]
    hosts = {h["host"]: h for h in f.plan_hosts(fleet, 50)}
    assert all(name in hosts and "outage" in hosts[name] for name in outage["hosts"])
    inside = _day_start(DAY) + 2 * 3600 + 20 * 60  # 02:20Z, inside 02:10 + 35 min
    for day_offset in range(4):
        t = np.array([inside + day_offset * 86400])
        down = [slot for slot in range(len(outage["hosts"]))
                if g.outage_mask(t, slot, len(outage["hosts"]), outage["per_day"], 2 * 3600 + 600, outage["minutes"])[0]]
        assert len(down) == outage["per_day"]
    before = np.array([_day_start(DAY) + 2 * 3600 + 9 * 60])
    assert not any(g.outage_mask(before, s, 6, 3, 2 * 3600 + 600, 35)[0] for s in range(6))


def test_outage_host_loses_exactly_its_window_and_prefixed_fleets_keep_every_row():
    fleet = f.load_fleet()
    start, end = _day_start(DAY), _day_start(DAY) + 86400
    window = (start + 2 * 3600 + 600, start + 2 * 3600 + 600 + 35 * 60)
    demo = {h["host"]: h for h in f.plan_hosts(fleet, 50)}
    down = next(name for name in fleet["incidents"]["outage"]["hosts"]
                if g.outage_mask(np.array([window[0]]), demo[name]["outage"]["slot"], 6, 3, 2 * 3600 + 600, 35)[0])
    twin = next(h for h in f.plan_hosts(fleet, 50, prefix="u-") if h["host"] == "u-" + down)
    assert "outage" not in twin
    rows, pings = {}, {}
    for label, host in (("demo", demo[down]), ("test", twin)):
        ids = {s["key"]: n for n, s in enumerate(host["items"], 1)}
        generated = f.host_rows(host, ids, start, end, seed=1)
        # The agent's items (no down_value) are silent in the window ...
        agent = {ids[s["key"]] for s in host["items"] if "down_value" not in s}
        table = f.to_arrow(0, generated[0]).to_pandas()
        table = table[table.itemid.isin(agent)]
        rows[label] = (len(table), bool(((table.clock >= window[0]) & (table.clock < window[1])).any()))
        # ... while the server's ICMP ping goes on, 0 in the window and 1 elsewhere.
        ping = f.to_arrow(3, generated[3]).to_pandas()
        ping = ping[ping.itemid == ids["icmpping"]]
        inside = (ping.clock >= window[0]) & (ping.clock < window[1])
        pings[label] = (len(ping), sorted(set(ping.value[inside])), sorted(set(ping.value[~inside])))
    minute_items = sum(1 for s in twin["items"] if s["value_type"] == 0 and s["interval"] == 60
                       and "down_value" not in s)
    assert rows["test"] == (minute_items * 1440, True)
    assert rows["demo"] == (minute_items * (1440 - 35), False)
    assert pings["test"] == (1440, [1], [1])
    assert pings["demo"] == (1440, [0], [1])


def test_disk_fill_host_runs_out_of_space_every_day():
    fleet = f.load_fleet()
    host = next(h for h in f.plan_hosts(fleet, 50) if h["host"] == "db-02")
    other = next(h for h in f.plan_hosts(fleet, 50) if h["host"] == "db-03")
    key = "vfs.fs.size[/data,pfree]"
    spec = next(s for s in host["items"] if s["key"] == key)
    assert spec["generator"]["cycle_days"] == 1
    assert next(s for s in other["items"] if s["key"] == key)["generator"].get("cycle_days", 90) != 1
    ids = {s["key"]: n for n, s in enumerate(host["items"], 1)}
    rows = f.to_arrow(0, f.host_rows(host, ids, _day_start(DAY), _day_start(DAY) + 86400, seed=1)[0]).to_pandas()
    free = rows[rows.itemid == ids[key]].sort_values("clock").value.to_numpy()
    assert free[0] > 55 and free[-1] < 5 and np.all(np.diff(free) < 0.5)


def test_incident_lines_name_the_hosts():
    lines = f.incident_lines(f.load_fleet(), [DAY])
    assert lines[0].startswith(f"SYNTHETIC outage {DAY} 02:10Z") and lines[0].count(",") == 2
    assert "db-02" in lines[1]


def test_trade_slow_spell_until_and_weekends():
    from etl.logs.tradegen import generate_lines

    def latencies(lines, hhmm_from, hhmm_to):
        out = []
        for line in lines:
            if line.startswith("#") or "result=OK" not in line or "type=NEW_ORDER" not in line:
                continue
            hhmm = line[11:16]
            if hhmm_from <= hhmm < hhmm_to:
                out.append(int(line.split("latency_us=")[1].split()[0]))
        return np.median(out)

    plain = list(generate_lines("2026-12-01", "2026-12-02", seed=3, rate=1.0))
    slow = list(generate_lines("2026-12-01", "2026-12-02", seed=3, rate=1.0, slow=("10:40", 40, 10.0, 0)))
    assert len(plain) + 1 == len(slow)  # one more header line, same requests
    assert latencies(slow, "10:40", "11:20") > 7 * latencies(plain, "10:40", "11:20")
    assert latencies(slow, "13:30", "14:30") == latencies(plain, "13:30", "14:30")
    until = int(dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.timezone.utc).timestamp())  # 10:00 CST
    cut = [line for line in generate_lines("2026-12-01", "2026-12-02", seed=3, rate=1.0, until=until)
           if not line.startswith("#")]
    assert cut and max(line[:19] for line in cut) < "2026-12-01 10:00:00"
    saturday = "2026-12-05"
    assert not [x for x in generate_lines(saturday, "2026-12-06", rate=1.0) if not x.startswith("#")]
    assert [x for x in generate_lines(saturday, "2026-12-06", rate=1.0, weekends=True) if not x.startswith("#")]


def test_story_logs_are_deterministic_standard_lines(tmp_path):
    from etl.logs import storygen
    from etl.logs.parsers import ParseContext, make_parser

    until = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    for kind, fmt in (("auth", "sshd"), ("mail", "postfix")):
        path, n = storygen.write_day(kind, DAY, tmp_path / "a", until=until)
        again, _ = storygen.write_day(kind, DAY, tmp_path / "b", until=until)
        assert path.read_bytes() == again.read_bytes() and path.name.startswith("synthetic-")
        parser = make_parser(fmt, ParseContext.build(path.name, DAY.year, "UTC", None))
        docs = [parser.parse(line) for line in path.read_text().splitlines()]
        assert len(docs) == n and all(d is not None for d in docs)
        assert all(d["@timestamp"][:10] == DAY.isoformat() for d in docs if isinstance(d["@timestamp"], str)) or True
        if kind == "auth":
            fails = [d for d in docs if d.get("source.ip") == storygen.BRUTE_IP and d.get("event.outcome") == "failure"]
            assert len(fails) >= 100
        else:
            bounced = [d for d in docs if d.get("email.delivery.status") == "bounced"]
            assert len(bounced) == 120
    early = dt.datetime.combine(DAY, dt.time(0, 30), tzinfo=dt.timezone.utc)
    path, n = storygen.write_day("auth", DAY, tmp_path / "c", until=early)
    assert 0 < n < 610


def test_library_info_is_filtered_unless_verbose():
    from etl.console import OwnInfoOnly

    keep = OwnInfoOnly()
    record = lambda name, level: logging.LogRecord(name, level, __file__, 1, "m", None, None)  # noqa: E731
    assert not keep.filter(record("elastic_transport.transport", logging.INFO))
    assert not keep.filter(record("great_expectations.core", logging.INFO))
    assert keep.filter(record("urllib3.connectionpool", logging.WARNING))
    assert keep.filter(record("etl.ingest", logging.INFO)) and keep.filter(record("etl", logging.INFO))
    assert not keep.filter(record("etlx", logging.INFO))


def test_many_findings_partitions_published_in_one_step(tmp_path):
    import dataclasses

    from etl.config import load
    from etl.lake.findings import write_findings_many
    from etl.lake.storage import open_storage

    settings = dataclasses.replace(load(), lake_url=f"file://{tmp_path / 'lake'}", home=tmp_path)
    days = [DAY + dt.timedelta(days=i) for i in range(5)]
    tables = {d: pa.table({"job": ["j"], "n": [i]}) for i, d in enumerate(days)}
    paths = write_findings_many(settings, "j", tables)
    assert len(paths) == 5
    storage = open_storage(settings)
    for d in days:
        assert storage.exists(f"findings/job=j/date={d:%Y-%m-%d}/part-00000.parquet")
    assert not storage.list("_staging")
    again = write_findings_many(settings, "j", {days[0]: pa.table({"job": ["j"], "n": [42]})})
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "lake" / f"findings/job=j/date={days[0]:%Y-%m-%d}/part-00000.parquet")["n"].to_pylist() == [42]
    assert len(again) == 1
