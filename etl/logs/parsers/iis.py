"""`iis`: Microsoft IIS W3C extended log. The `#Fields:` directive names the columns and may change
mid-file (each restart writes a new header), so the column list is per file and per position;
other `#` directives are skipped by design. Times are UTC (W3C spec). `time-taken` is in
milliseconds -> event.duration in nanoseconds. Values are space separated, spaces inside values
are written as '+', '-' means empty."""

from __future__ import annotations

import datetime as dt

from etl.logs.parsers.base import UTC, LineError, LineParser, ParseContext, iso_utc, put_address, put_port


def _text(v: str) -> str:
    return v.replace("+", " ")


def _int(v: str) -> int | None:
    return int(v) if v.isdigit() else None


class IisParser(LineParser):
    dataset = "iis"

    def __init__(self, ctx: ParseContext):
        super().__init__(ctx)
        self.fields: list[str] | None = None

    def parse(self, line: str) -> dict | None:
        if not line.strip():
            return None
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                self.fields = line[len("#Fields:"):].split()
            return None
        if self.fields is None:
            raise LineError("data line before any #Fields: header")
        values = line.split(" ")
        if len(values) != len(self.fields):
            raise LineError(f"{len(values)} values for {len(self.fields)} #Fields columns")
        row = dict(zip(self.fields, values))
        date, time = row.get("date"), row.get("time")
        if not date or not time:
            raise LineError("no date/time columns")
        try:
            moment = dt.datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=UTC)
        except ValueError:
            raise LineError(f"invalid date/time {date} {time}") from None
        doc: dict = {"@timestamp": iso_utc(moment), "event.action": "request"}
        put_address(doc, row.get("c-ip"))
        put_address(doc, row.get("s-ip"), "server")
        put_port(doc, row.get("s-port"), "server")
        if row.get("s-computername", "-") != "-":
            doc["host.name"] = row["s-computername"]
        if row.get("cs-username", "-") != "-":
            doc["user.name"] = _text(row["cs-username"])
        method = row.get("cs-method", "-")
        if method != "-":
            doc["http.request.method"] = method
        stem = row.get("cs-uri-stem", "-")
        if stem != "-":
            doc["url.path"] = stem
            query = row.get("cs-uri-query", "-")
            if query != "-":
                doc["url.query"] = query
                doc["url.original"] = f"{stem}?{query}"
            else:
                doc["url.original"] = stem
        if row.get("cs(User-Agent)", "-") != "-":
            doc["user_agent.original"] = _text(row["cs(User-Agent)"])
        if row.get("cs(Referer)", "-") != "-":
            doc["http.request.referrer"] = row["cs(Referer)"]
        status = _int(row.get("sc-status", "-"))
        if status is not None:
            doc["http.response.status_code"] = status
            doc["event.outcome"] = "success" if status < 400 else "failure"
        else:
            doc["event.outcome"] = "unknown"
        for column, name in (("sc-substatus", "iis.substatus"), ("sc-win32-status", "iis.win32_status"),
                             ("sc-bytes", "http.response.bytes"), ("cs-bytes", "http.request.bytes")):
            value = _int(row.get(column, "-"))
            if value is not None:
                doc[name] = value
        taken = _int(row.get("time-taken", "-"))
        if taken is not None:
            doc["event.duration"] = taken * 1_000_000
        return doc
