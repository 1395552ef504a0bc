"""Optional copies of built extracts: to an HDFS folder (MONETL_EXTRACTS_HDFS_URL) and to Tableau
Server (MONETL_TABLEAU_SERVER_URL + site, project, personal access token). Each is skipped with one
log line when not configured; a half-configured Tableau target is a ConfigError naming what is missing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from etl.config import Secret, Settings
from etl.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableauTarget:
    url: str
    site: str
    project: str
    token_name: str
    token_secret: Secret


def tableau_target(settings: Settings) -> TableauTarget | None:
    """The configured Tableau Server, None when MONETL_TABLEAU_SERVER_URL is unset."""
    if not settings.tableau_server_url:
        return None
    parsed = urlparse(settings.tableau_server_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"MONETL_TABLEAU_SERVER_URL={settings.tableau_server_url!r} is not an http(s) URL")
    missing = [name for name, value in (("MONETL_TABLEAU_TOKEN_NAME", settings.tableau_token_name),
                                        ("MONETL_TABLEAU_TOKEN_SECRET", settings.tableau_token_secret.reveal()),
                                        ("MONETL_TABLEAU_PROJECT", settings.tableau_project))
               if not value]
    if missing:
        raise ConfigError(f"MONETL_TABLEAU_SERVER_URL is set but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not: set them or unset the URL")
    # An empty site is Tableau's Default site; that is a valid choice, not a missing setting.
    return TableauTarget(settings.tableau_server_url.rstrip("/"), settings.tableau_site, settings.tableau_project,
                         settings.tableau_token_name, settings.tableau_token_secret)


def publish_to_tableau(settings: Settings, paths: list[Path]) -> list[str]:
    """Publish (overwrite) each .hyper as a data source in the target project; returns result lines."""
    target = tableau_target(settings)
    if target is None:
        log.info("Tableau Server publish skipped: MONETL_TABLEAU_SERVER_URL is not set")
        return []
    import tableauserverclient as TSC

    auth = TSC.PersonalAccessTokenAuth(target.token_name, target.token_secret.reveal(), site_id=target.site)
    server = TSC.Server(target.url, use_server_version=True)
    lines = []
    try:
        with server.auth.sign_in(auth):
            projects = [p for p in TSC.Pager(server.projects) if p.name == target.project]
            if not projects:
                raise ConfigError(f"Tableau Server {target.url} site {target.site or '(default)'} has no project "
                                  f"{target.project!r} (MONETL_TABLEAU_PROJECT)")
            for path in paths:
                item = TSC.DatasourceItem(projects[0].id, name=f"monetl {Path(path).stem}")
                published = server.datasources.publish(item, str(path), mode=TSC.Server.PublishMode.Overwrite)
                lines.append(f"published {path} to {target.url} as data source {published.name!r}")
    except ConfigError:
        raise
    except Exception as exc:  # TSC raises several types; the message never holds the token secret
        raise StoreError(f"Tableau Server {target.url}: publish failed: {type(exc).__name__}: "
                         f"{str(exc).replace(target.token_secret.reveal(), '***')}") from exc
    return lines


def copy_to_hdfs(settings: Settings, paths: list[Path]) -> list[str]:
    """Copy files into the MONETL_EXTRACTS_HDFS_URL folder (upload aside, then swap in by rename)."""
    if not settings.extracts_hdfs_url:
        log.info("HDFS copy of extracts skipped: MONETL_EXTRACTS_HDFS_URL is not set")
        return []
    from etl.lake.storage import open_storage

    storage = open_storage(settings, lake_url=settings.extracts_hdfs_url)
    lines = []
    for path in paths:
        name = Path(path).name
        staging = f"_uploading.{name}"
        storage.upload(Path(path), staging)
        storage.delete(name)
        storage.rename(staging, name)
        lines.append(f"copied {path} to {storage.url}/{name}")
    return lines
