"""Settings from the environment (MONETL_*). Defaults are the local single-machine stack.

Secrets (passwords, tokens, API keys) are held in `Secret` so that printing a
Settings object, logging it or putting it in an error message never shows them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from etl.errors import ConfigError


class Secret(str):
    """A str whose repr/str never reveal the value; use .reveal() at the one place it is sent."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def __str__(self) -> str:
        return "***" if self else ""

    def __format__(self, spec: str) -> str:
        return str(self)

    def reveal(self) -> str:
        return str.__str__(self)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"MONETL_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"MONETL_{name}={raw!r} is not a whole number") from exc


def _home() -> Path:
    return Path(_env("HOME", str(Path.home() / ".monetl"))).expanduser()


@dataclass(frozen=True)
class Settings:
    # Where services, downloads, logs, quarantine, the local lake and extracts live by default.
    home: Path = field(default_factory=_home)

    # Ports of the local services (all bound to 127.0.0.1).
    pg_port: int = field(default_factory=lambda: _env_int("PG_PORT", 5432))
    zabbix_api_port: int = field(default_factory=lambda: _env_int("ZABBIX_API_PORT", 8088))
    zabbix_server_port: int = field(default_factory=lambda: _env_int("ZABBIX_SERVER_PORT", 10051))
    es_port: int = field(default_factory=lambda: _env_int("ES_PORT", 9200))
    hdfs_namenode_port: int = field(default_factory=lambda: _env_int("HDFS_NAMENODE_PORT", 9000))
    hdfs_http_port: int = field(default_factory=lambda: _env_int("HDFS_HTTP_PORT", 9870))
    airflow_port: int = field(default_factory=lambda: _env_int("AIRFLOW_PORT", 8080))
    smtp_port: int = field(default_factory=lambda: _env_int("SMTP_PORT", 8025))

    # Elasticsearch (short term). URL may be https; auth by API key or basic; CA file for TLS.
    es_url: str = field(default_factory=lambda: _env("ES_URL", ""))
    es_api_key: Secret = field(default_factory=lambda: Secret(_env("ES_API_KEY")))
    es_user: str = field(default_factory=lambda: _env("ES_USER"))
    es_password: Secret = field(default_factory=lambda: Secret(_env("ES_PASSWORD")))
    es_ca_certs: str = field(default_factory=lambda: _env("ES_CA_CERTS"))
    es_index_prefix: str = field(default_factory=lambda: _env("ES_INDEX_PREFIX", "monetl"))
    # Replicas of point/log indices: 0 on the single local node, >= 1 on a real cluster.
    es_replicas: int = field(default_factory=lambda: _env_int("ES_REPLICAS", 0))
    # Bulk requests a load keeps open at once (each runs on one write thread of the node).
    es_bulk_in_flight: int = field(default_factory=lambda: max(1, _env_int("ES_BULK_IN_FLIGHT", 2)))
    # How long a request is retried (backoff + jitter) on 429/5xx/connection errors, and how long a
    # write waits out an index write block (compaction) before failing; seconds (etl/search/retry.py).
    es_retry_seconds: int = field(default_factory=lambda: _env_int("ES_RETRY_SECONDS", 120))
    es_block_wait_seconds: int = field(default_factory=lambda: _env_int("ES_BLOCK_WAIT_SECONDS", 900))

    # Zabbix JSON-RPC API and (optional, read-only) direct database access.
    zabbix_url: str = field(default_factory=lambda: _env("ZABBIX_URL", ""))
    zabbix_user: str = field(default_factory=lambda: _env("ZABBIX_USER", "Admin"))
    zabbix_password: Secret = field(default_factory=lambda: Secret(_env("ZABBIX_PASSWORD", "zabbix")))
    zabbix_token: Secret = field(default_factory=lambda: Secret(_env("ZABBIX_TOKEN")))
    zabbix_db_url: Secret = field(default_factory=lambda: Secret(_env("ZABBIX_DB_URL", "")))
    # Timeouts (seconds) of database-mode sources (Zabbix DB, KCMM DB) and of WebHDFS requests: a
    # service that hangs fails the run (which is then retried) instead of holding it forever.
    db_connect_timeout_seconds: int = field(default_factory=lambda: _env_int("DB_CONNECT_TIMEOUT_SECONDS", 10))
    db_statement_timeout_seconds: int = field(default_factory=lambda: _env_int("DB_STATEMENT_TIMEOUT_SECONDS", 900))
    hdfs_timeout_seconds: int = field(default_factory=lambda: _env_int("HDFS_TIMEOUT_SECONDS", 120))
    # Items the local Zabbix server is sized for (its CacheSize and other caches derive from it);
    # the design scale is 2,000 hosts x 50 items.
    zabbix_fleet_items: int = field(default_factory=lambda: _env_int("ZABBIX_FLEET_ITEMS", 100_000))
    # Seconds the API mode reuses its item catalog (MONETL_HOME/state); 0 reads it on every run.
    zabbix_catalog_ttl: int = field(default_factory=lambda: _env_int("ZABBIX_CATALOG_TTL", 3600))

    # KCMM: its database (SQLAlchemy URL) and/or the folder its CSV exports are dropped into.
    kcmm_db_url: Secret = field(default_factory=lambda: Secret(_env("KCMM_DB_URL", "")))
    kcmm_csv_dir: str = field(default_factory=lambda: _env("KCMM_CSV_DIR", ""))

    # Long-term lake: file:///path (embedded default) or webhdfs://host:port/path.
    lake_url: str = field(default_factory=lambda: _env("LAKE_URL", ""))
    hdfs_user: str = field(default_factory=lambda: _env("HDFS_USER", "monetl"))
    short_term_days: int = field(default_factory=lambda: _env_int("SHORT_TERM_DAYS", 7))
    # Late-value horizon: a day is compacted (and its index deleted) only this long after it ended;
    # a value later than that is still found by the next reconciliation of its day.
    late_horizon_hours: int = field(default_factory=lambda: _env_int("LATE_HORIZON_HOURS", 24))

    # Reports.
    extracts_dir: str = field(default_factory=lambda: _env("EXTRACTS_DIR", ""))
    report_tz: str = field(default_factory=lambda: _env("REPORT_TZ", "Asia/Shanghai"))
    # Optional copies of the extracts: an HDFS folder (webhdfs://host:port/path) and Tableau Server
    # (personal access token); unset means skipped.
    extracts_hdfs_url: str = field(default_factory=lambda: _env("EXTRACTS_HDFS_URL"))
    tableau_server_url: str = field(default_factory=lambda: _env("TABLEAU_SERVER_URL"))
    tableau_site: str = field(default_factory=lambda: _env("TABLEAU_SITE"))
    tableau_project: str = field(default_factory=lambda: _env("TABLEAU_PROJECT", "monetl"))
    tableau_token_name: str = field(default_factory=lambda: _env("TABLEAU_TOKEN_NAME"))
    tableau_token_secret: Secret = field(default_factory=lambda: Secret(_env("TABLEAU_TOKEN_SECRET")))

    # Notifications of high/critical log findings (etl/notify). A channel is active when configured:
    # SMTP when notify_smtp_to is set, a generic JSON webhook, a WeChat Work group robot. URLs that
    # embed a token are secrets. notify_channels (comma list) narrows the active set.
    notify_channels: str = field(default_factory=lambda: _env("NOTIFY_CHANNELS"))
    notify_min_severity: str = field(default_factory=lambda: _env("NOTIFY_MIN_SEVERITY", "high"))
    notify_smtp_host: str = field(default_factory=lambda: _env("NOTIFY_SMTP_HOST", "127.0.0.1"))
    notify_smtp_from: str = field(default_factory=lambda: _env("NOTIFY_SMTP_FROM", "monetl@localhost"))
    notify_smtp_to: str = field(default_factory=lambda: _env("NOTIFY_SMTP_TO"))
    notify_smtp_user: str = field(default_factory=lambda: _env("NOTIFY_SMTP_USER"))
    notify_smtp_password: Secret = field(default_factory=lambda: Secret(_env("NOTIFY_SMTP_PASSWORD")))
    notify_smtp_starttls: bool = field(default_factory=lambda: _env("NOTIFY_SMTP_STARTTLS", "0").lower() in ("1", "true", "yes"))
    # SMTPS (TLS from the first byte, usually port 465); both TLS modes verify the certificate and
    # host name (system CAs, or this CA file). A login over clear text is refused unless allowed.
    notify_smtp_ssl: bool = field(default_factory=lambda: _env("NOTIFY_SMTP_SSL", "0").lower() in ("1", "true", "yes"))
    notify_smtp_ca_file: str = field(default_factory=lambda: _env("NOTIFY_SMTP_CA_FILE"))
    notify_smtp_allow_plain_login: bool = field(
        default_factory=lambda: _env("NOTIFY_SMTP_ALLOW_PLAIN_LOGIN", "0").lower() in ("1", "true", "yes"))
    notify_webhook_url: Secret = field(default_factory=lambda: Secret(_env("NOTIFY_WEBHOOK_URL")))
    notify_wecom_url: Secret = field(default_factory=lambda: Secret(_env("NOTIFY_WECOM_URL")))
    # A finding whose notification failed through every retry is sent by a later run of its job if
    # it is at most this many days old.
    notify_backlog_days: int = field(default_factory=lambda: _env_int("NOTIFY_BACKLOG_DAYS", 7))

    # Business logs: syslog-style lines carry no year and no zone (see etl/logs/load.py).
    log_year: int | None = field(default_factory=lambda: _env_int("LOG_YEAR", 0) or None)
    log_tz: str = field(default_factory=lambda: _env("LOG_TZ", "UTC"))
    # Log jobs: the firm's own mail domains (comma-separated; overrides rules.json local_domains)
    # and how long after a window's end its events are taken as indexed (late shippers).
    mail_local_domains: str = field(default_factory=lambda: _env("MAIL_LOCAL_DOMAINS"))
    log_settle_s: int = field(default_factory=lambda: _env_int("LOG_SETTLE_S", 120))

    # monetl's own health in Zabbix (etl/health): trapper items of the host `health_host`, pushed to
    # the server's trapper at health_zabbix_server:zabbix_server_port; MONETL_HEALTH_PUSH=0 turns it off.
    health_push: bool = field(default_factory=lambda: _env("HEALTH_PUSH", "1").lower() in ("1", "true", "yes"))
    health_host: str = field(default_factory=lambda: _env("HEALTH_HOST", "monetl"))
    health_zabbix_server: str = field(default_factory=lambda: _env("HEALTH_ZABBIX_SERVER", "127.0.0.1"))
    health_timeout: int = field(default_factory=lambda: _env_int("HEALTH_TIMEOUT", 5))

    # Bad records, per run, replayable with `monetl replay PATH`.
    quarantine_dir: str = field(default_factory=lambda: _env("QUARANTINE_DIR", ""))

    def __post_init__(self) -> None:
        # Derived defaults depend on ports/home, so fill them after the fields are read.
        derived = {
            "es_url": f"http://127.0.0.1:{self.es_port}",
            "zabbix_url": f"http://127.0.0.1:{self.zabbix_api_port}/api_jsonrpc.php",
            # Extraction reads with the read-only role; only the demo seeder writes (as the DB owner).
            "zabbix_db_url": Secret(f"postgresql+psycopg2://monetl_ro:monetl_ro@127.0.0.1:{self.pg_port}/zabbix"),
            "kcmm_db_url": Secret(f"postgresql+psycopg2://kcmm:kcmm@127.0.0.1:{self.pg_port}/kcmm"),
            "kcmm_csv_dir": str(self.home / "kcmm" / "inbox"),
            "lake_url": f"file://{self.home / 'lake'}",
            "extracts_dir": str(self.home / "extracts"),
            "quarantine_dir": str(self.home / "quarantine"),
        }
        for name, value in derived.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """Service data directories and pid files."""
        return self.home / "run"

    @property
    def opt_dir(self) -> Path:
        """Unpacked service distributions (Elasticsearch, HDFS jars)."""
        return self.home / "opt"

    def redacted(self) -> dict[str, str]:
        """For printing: every field, secrets shown as *** (URLs with passwords included)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value)
        return out


def load() -> Settings:
    return Settings()
