"""Tableau extracts from the lake: star-schema .hyper files defined by schemas/extracts/*.json, built
incrementally per report day, plus an HTML summary for people who do not open Tableau.

Public API: build(settings, names, days) (report-local days), write_summary(settings),
run(settings, names, days) (build + summary + optional HDFS/Tableau copies), run_demo(settings).
Definitions: schemas/extracts/*.json (see the README there)."""

from __future__ import annotations


def build(settings, names, days, fresh=False):
    from etl.extracts.build import build as _build

    return _build(settings, names, days, fresh=fresh)


def run(settings, names="all", days=None, fresh=False):
    from etl.extracts.pipeline import run as _run

    return _run(settings, names, days, fresh=fresh)


def write_summary(settings, days=None):
    from etl.extracts.summary import write_summary as _write

    return _write(settings, days)


def run_demo(settings) -> list[str]:
    from etl.extracts.pipeline import run_demo as _run_demo

    return _run_demo(settings)
