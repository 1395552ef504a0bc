"""Console logging for the `monetl` command: our own INFO lines, only warnings and errors from
libraries (elastic_transport logs every bulk request, great_expectations every decorator, urllib3,
airflow, ...), everything with -v.

A filter on the handler rather than logger levels: libraries set their own loggers' levels when
imported (often after this runs), but every record still passes the root handler."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OwnInfoOnly(logging.Filter):
    """Passes WARNING and above from anyone, lower levels only from `etl` loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == "etl" or record.name.startswith("etl.")


def configure(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
            handler.addFilter(OwnInfoOnly())


def quiet_own_info(verbose: bool = False) -> None:
    """For commands that print their own summary (the demo): etl INFO lines would repeat it."""
    if not verbose:
        logging.getLogger("etl").setLevel(logging.WARNING)


class Steps:
    """Progress of a long demo/CLI step: an updating line on a terminal, nothing otherwise (the
    caller prints one summary line per step either way, which is all a log file needs)."""

    def __init__(self, title: str, total: int | None = None, stream=None):
        import sys

        self.title, self.total, self.done = title, total, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._width = 0

    def step(self, what: str = "") -> None:
        self.done += 1
        if self.live:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            text = f"   {self.title} {count} {what}"[:110]
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()

    def close(self) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
