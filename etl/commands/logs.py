"""`monetl logs ...`: business-log loading (`load`, `generate`, in etl/logs/cli_load.py) and the
log-analysis jobs (`run`, in etl/logs/cli_jobs.py). Each half registers its own sub-commands so
the two owners never edit the same file."""

from __future__ import annotations

import importlib


def register(sub) -> None:
    p = sub.add_parser("logs", help="load business logs into Elasticsearch and run the log-analysis jobs")
    logs_sub = p.add_subparsers(dest="logs_command", required=True, metavar="LOGS_COMMAND")
    importlib.import_module("etl.logs.cli_load").register(logs_sub)
    try:
        jobs_cli = importlib.import_module("etl.logs.cli_jobs")
    except ModuleNotFoundError as exc:
        # Only the absence of the jobs module itself is tolerated; a broken import inside it is not.
        if exc.name != "etl.logs.cli_jobs":
            raise
    else:
        jobs_cli.register(logs_sub)
