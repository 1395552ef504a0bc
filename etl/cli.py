"""`monetl` command line. Each area registers its sub-commands from etl/commands/<area>.py;
heavy imports happen inside the handlers so `monetl --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from etl import console
from etl.errors import MonetlError

COMMAND_MODULES = ["services", "seed", "ingest", "lake", "extracts", "logs", "health", "dashboards", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monetl", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"etl.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console.configure(args.verbose)
    try:
        return int(args.func(args) or 0)
    except MonetlError as exc:
        print(f"monetl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("monetl: interrupted; re-run the same command: every step is idempotent", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
