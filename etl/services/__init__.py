"""Local services for tests and the demo: up/down/status, idempotent, bound to 127.0.0.1.

Each service lives in its own module with one Service subclass; ORDER is the start order
(dependencies first) and the reverse is the stop order."""

from __future__ import annotations

import importlib

from etl.config import Settings, load
from etl.errors import ConfigError
from etl.services.base import Service

# name -> "module:Class"; a service's dependencies come before it.
REGISTRY = {
    "postgres": "etl.services.postgres:Postgres",
    "zabbix": "etl.services.zabbix:Zabbix",
    "elasticsearch": "etl.services.elasticsearch:Elasticsearch",
    "hdfs": "etl.services.hdfs:Hdfs",
    "airflow": "etl.services.airflow:Airflow",
}
ORDER = list(REGISTRY)
DEPENDS = {"zabbix": ["postgres"], "airflow": ["postgres"]}


def get(name: str, settings: Settings | None = None) -> Service:
    if name not in REGISTRY:
        raise ConfigError(f"unknown service {name!r}; known: {', '.join(ORDER)}")
    module_name, cls_name = REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(settings or load())


def _with_deps(names: list[str]) -> list[str]:
    wanted: set[str] = set()

    def add(n: str) -> None:
        for dep in DEPENDS.get(n, []):
            add(dep)
        wanted.add(n)

    for n in names:
        add(n)
    return [n for n in ORDER if n in wanted]


def ensure(name: str, settings: Settings | None = None) -> Service:
    """Start `name` (and what it depends on) unless already healthy; return the service."""
    settings = settings or load()
    for n in _with_deps([name]):
        get(n, settings).up()
    return get(name, settings)


def up(names: list[str] | None = None, settings: Settings | None = None) -> None:
    settings = settings or load()
    for n in _with_deps(names or ORDER):
        get(n, settings).up()


def down(names: list[str] | None = None, settings: Settings | None = None) -> None:
    settings = settings or load()
    for n in reversed(names or ORDER):
        get(n, settings).stop()


def status(names: list[str] | None = None, settings: Settings | None = None) -> dict[str, tuple[bool, str]]:
    settings = settings or load()
    out = {}
    for n in names or ORDER:
        svc = get(n, settings)
        out[n] = (svc.healthy(), svc.endpoint())
    return out
