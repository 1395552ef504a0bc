"""The health template (schemas/zabbix/monetl_health.yaml, Zabbix 6.0 export format) and its
installation through the API: template, items, triggers, macros and the `monetl` host in one
configuration.import, idempotent (create missing, update existing)."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import yaml

from etl.errors import ServiceError
from etl.schema import SCHEMAS_DIR

log = logging.getLogger(__name__)

TEMPLATE_FILE = SCHEMAS_DIR / "zabbix" / "monetl_health.yaml"
TEMPLATE_NAME = "monetl health"
_RULES = {
    "groups": {"createMissing": True},
    "templates": {"createMissing": True, "updateExisting": True},
    "hosts": {"createMissing": True, "updateExisting": True},
    "templateLinkage": {"createMissing": True},
    "items": {"createMissing": True, "updateExisting": True},
    "triggers": {"createMissing": True, "updateExisting": True},
}


# Pushed by install() until the server accepts it: proof that the template is live.
INSTALLED_KEY = "monetl.health.installed"


@functools.cache
def template_doc(path: Path = TEMPLATE_FILE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def item_keys(path: Path = TEMPLATE_FILE) -> set[str]:
    return {i["key"] for t in template_doc(path)["zabbix_export"]["templates"] for i in t["items"]}


def export_for(host: str, macros: dict[str, str] | None = None) -> dict:
    """The export with the host renamed (tests use their own host) and optional host macros
    (e.g. a short {$MONETL.INGEST.MAX_AGE} on a test host)."""
    import copy

    doc = copy.deepcopy(template_doc())
    for h in doc["zabbix_export"]["hosts"]:
        h["host"] = h["name"] = host
        if macros:
            h["macros"] = [{"macro": k, "value": str(v)} for k, v in macros.items()]
    return doc


def install(settings, host: str | None = None, macros: dict[str, str] | None = None, api=None) -> dict:
    """Import template + host; make the local server see the new items at once. Returns
    {"host", "hostid", "items", "triggers"} as found after the import."""
    from etl.seed.zabbix_objects import zabbix_api

    host = host or settings.health_host
    api = api or zabbix_api(settings)
    source = yaml.safe_dump(export_for(host, macros), sort_keys=False, allow_unicode=True)
    try:
        api.configuration.import_(format="yaml", rules=_RULES, source=source)
    except Exception as exc:  # zabbix_utils raises APIRequestError with the server's message
        raise ServiceError(f"Zabbix refused the health template {TEMPLATE_FILE.name}: {exc}") from exc
    found = api.host.get(filter={"host": [host]}, output=["hostid"], selectItems=["key_"],
                         selectTriggers=["triggerid"])
    if not found:
        raise ServiceError(f"health host {host} missing after importing {TEMPLATE_FILE.name}")
    _reload_local(settings)
    _wait_until_accepted(settings, host)
    h = found[0]
    return {"host": host, "hostid": h["hostid"], "items": len(h["items"]), "triggers": len(h["triggers"])}


def _reload_local(settings) -> None:
    """New trapper items are refused until the server's configuration cache has them. On the local
    stack reload it now; a remote server picks them up within its CacheUpdateFrequency."""
    from etl.services.zabbix import Zabbix

    server = Zabbix(settings)
    if settings.health_zabbix_server in ("127.0.0.1", "localhost") and server.config_file.exists():
        from etl.seed.zabbix_objects import reload_config_cache

        try:
            reload_config_cache(settings)
            return
        except Exception as exc:  # not our server (no rights, other install): it syncs by itself
            log.info("config cache reload skipped: %s", exc)
    log.info("Zabbix accepts the new items after its next configuration sync (CacheUpdateFrequency)")


def _wait_until_accepted(settings, host: str, timeout: float = 60.0) -> bool:
    """The reload (or the next sync) is asynchronous: until the server has the new items it answers
    "failed" and drops values. Push `monetl.health.installed` until it is processed (bounded), so
    the figures the caller pushes next are not lost; False (logged) when it never was."""
    from etl.health import push

    deadline = time.monotonic() + timeout
    while True:
        result = push.push(settings, {INSTALLED_KEY: int(time.time())}, host=host)
        if result is None or result["processed"]:  # pushing off, or accepted
            return result is not None
        if time.monotonic() > deadline:
            log.warning("Zabbix did not accept values for %s within %.0f s of the import", host, timeout)
            return False
        time.sleep(1.0)


def remove_host(settings, host: str, api=None) -> int:
    """Delete a (test) health host; the template stays."""
    from etl.seed.zabbix_objects import delete_hosts, zabbix_api

    return delete_hosts(api or zabbix_api(settings), settings, [host])
