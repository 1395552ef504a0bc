"""Zabbix 6.0 from the Debian packages: zabbix_server (trapper port, writes history/trends) and the
PHP frontend serving the JSON-RPC API, both on 127.0.0.1, on monetl's own PostgreSQL.

The frontend keeps PHP's default 128M memory_limit on purpose: a real Zabbix frontend fails a
history.get of ~150k rows with HTTP 500, and extraction must be tested against that wall."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

from etl.errors import ServiceError
from etl.services.base import Service, pid_alive, port_open, wait_until
from etl.services.postgres import apt_install, chown_to, grant_traverse, missing_packages

ZABBIX_SERVER_BIN = "/usr/sbin/zabbix_server"
FRONTEND_DIR = Path("/usr/share/zabbix")
# Debian's frontend reads only this path (CConfigFile::CONFIG_FILE_PATH).
FRONTEND_CONFIG = Path("/etc/zabbix/zabbix.conf.php")
PHP_MEMORY_LIMIT = "128M"
# The built-in PHP server answers one request at a time per worker; tests run in parallel.
PHP_WORKERS = "4"
OS_USER = "zabbix"


def _php_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


MB = 1024 * 1024


def _round_up_mb(size: int, step_mb: int, cap_mb: int = 2048) -> str:
    """Rounded up to step_mb, at most cap_mb (the history/trend caches' 2G maximum in 6.0)."""
    step = step_mb * MB
    return f"{min(-(-size // step) * step_mb, cap_mb)}M"


def server_cache_sizes(items: int) -> dict[str, str]:
    """zabbix_server.conf cache sizes for a fleet of `items` items (hosts ~ items / 50).

    The stock CacheSize (32M) holds the configuration of roughly 30,000 items: seeding 40,000 made
    the server die with `__zbx_mem_malloc(): out of memory`. Per item (6.0, with tags and the
    config cache's indexes) ~1.5 KB are measured in the wild; 2 KB leaves room for hosts, triggers
    and growth. The history caches buffer about a minute of values (one per item) before the DB
    syncers write them; trends hold one open hour per numeric item; the value cache serves
    triggers and calculated items."""
    items = max(int(items), 1)
    return {
        "CacheSize": _round_up_mb(64 * MB + items * 2048, 64, 64 * 1024),
        "HistoryCacheSize": _round_up_mb(16 * MB + items * 512, 16),
        "HistoryIndexCacheSize": _round_up_mb(4 * MB + items * 160, 4),
        "TrendCacheSize": _round_up_mb(4 * MB + items * 256, 4),
        "ValueCacheSize": _round_up_mb(8 * MB + items * 256, 8),
    }


class ZabbixFrontend(Service):
    """The API half of the Zabbix service: own pid and log file, started and stopped by Zabbix."""

    name = "zabbix-frontend"

    def start(self) -> None:
        self.spawn(["php", "-d", f"memory_limit={PHP_MEMORY_LIMIT}", "-S",
                    f"127.0.0.1:{self.settings.zabbix_api_port}", "-t", str(FRONTEND_DIR)],
                   env={"PHP_CLI_SERVER_WORKERS": PHP_WORKERS}, cwd=FRONTEND_DIR)

    def alive(self) -> bool:
        pid = _read_pid(self.pid_file)
        return pid is not None and pid_alive(pid)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Zabbix(Service):
    name = "zabbix"
    start_timeout = 120.0

    def __init__(self, settings):
        super().__init__(settings)
        self.frontend = ZabbixFrontend(settings)

    # -- paths -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.data_dir / "zabbix_server.conf"

    @property
    def var_dir(self) -> Path:
        """Written by the server after it drops to the zabbix user: its pid file and IPC sockets."""
        return self.data_dir / "var"

    @property
    def lock_file(self) -> Path:
        return self.settings.run_dir / "zabbix.lock"

    def endpoint(self) -> str:
        return (f"{self.settings.zabbix_url} (server trapper 127.0.0.1:{self.settings.zabbix_server_port}, "
                f"config {self.config_file})")

    # -- install -----------------------------------------------------------
    def install(self) -> None:
        """No-op when the Debian packages are there (scripts/setup.sh installs them)."""
        if Path(ZABBIX_SERVER_BIN).exists() and (FRONTEND_DIR / "api_jsonrpc.php").exists() and shutil.which("php"):
            return
        apt_install(missing_packages())

    # -- config ------------------------------------------------------------
    def server_config(self) -> str:
        s = self.settings
        lines = {
            "DBHost": "127.0.0.1",
            "DBPort": s.pg_port,
            "DBName": "zabbix",
            "DBUser": "zabbix",
            "DBPassword": "zabbix",
            "ListenIP": "127.0.0.1",
            "ListenPort": s.zabbix_server_port,
            # Logs go to stdout, which spawn() sends to the service log.
            "LogType": "console",
            "PidFile": self.var_dir / "zabbix_server.pid",
            "SocketDir": self.var_dir,
            # Seeded history is weeks old: the housekeeper must never delete it.
            "HousekeepingFrequency": 0,
            "CacheUpdateFrequency": 5,
            "StartPollers": 1,
            "StartPollersUnreachable": 1,
            "StartTrappers": 3,
            "StartPingers": 1,
            "StartDiscoverers": 1,
            "StartHTTPPollers": 1,
            "StartPreprocessors": 2,
            "StartHistoryPollers": 1,
            "StartDBSyncers": 2,
            "StartAlerters": 1,
            "StartEscalators": 1,
            "StartTimers": 1,
            "Timeout": 4,
            **server_cache_sizes(s.zabbix_fleet_items),
        }
        return "# written by monetl (etl/services/zabbix.py); regenerated on every start\n" + "".join(
            f"{k}={v}\n" for k, v in lines.items())

    def frontend_config(self) -> str:
        s = self.settings
        db = {
            "TYPE": "POSTGRESQL", "SERVER": "127.0.0.1", "PORT": str(s.pg_port), "DATABASE": "zabbix",
            "USER": "zabbix", "PASSWORD": "zabbix", "SCHEMA": "", "KEY_FILE": "", "CERT_FILE": "",
            "CA_FILE": "", "CIPHER_LIST": "", "VAULT_URL": "", "VAULT_DB_PATH": "", "VAULT_TOKEN": "",
        }
        out = ["<?php", "// written by monetl (etl/services/zabbix.py) from its settings"]
        out += [f"$DB['{k}'] = {_php_str(v)};" for k, v in db.items()]
        out += ["$DB['ENCRYPTION'] = false;", "$DB['VERIFY_HOST'] = false;", "$DB['DOUBLE_IEEE754'] = true;",
                "$ZBX_SERVER = '127.0.0.1';", f"$ZBX_SERVER_PORT = '{s.zabbix_server_port}';",
                "$ZBX_SERVER_NAME = 'monetl';", "$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;", ""]
        return "\n".join(out)

    def _write_configs(self) -> None:
        grant_traverse(self.settings.run_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o755)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        chown_to(self.var_dir, OS_USER)
        self.config_file.write_text(self.server_config())
        os.chmod(self.config_file, 0o644)
        wanted = self.frontend_config()
        if not FRONTEND_CONFIG.exists() or FRONTEND_CONFIG.read_text() != wanted:
            FRONTEND_CONFIG.parent.mkdir(parents=True, exist_ok=True)
            FRONTEND_CONFIG.write_text(wanted)
            os.chmod(FRONTEND_CONFIG, 0o644)

    # -- process -----------------------------------------------------------
    def server_alive(self) -> bool:
        pid = _read_pid(self.pid_file)
        return pid is not None and pid_alive(pid)

    def start(self) -> None:
        self._write_configs()
        if not self.server_alive():
            # -f: stay in the foreground so our pid file is the server's and its output our log.
            self.spawn([ZABBIX_SERVER_BIN, "-f", "-c", str(self.config_file)])
        if not self.frontend.alive():
            self.frontend.start()

    def stop(self) -> None:
        self.frontend.stop_pidfile()
        self.stop_pidfile()

    def runtime_control(self, option: str) -> str:
        """`zabbix_server -R option` against this server (e.g. config_cache_reload)."""
        return self.run([ZABBIX_SERVER_BIN, "-c", str(self.config_file), "-R", option],
                        what=f"zabbix_server -R {option}", timeout=30)

    # -- API ---------------------------------------------------------------
    def api_call(self, method: str, params, auth: str | None = None, timeout: float = 10):
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        if auth:
            body["auth"] = auth  # 6.0: token in the body
        req = urllib.request.Request(self.settings.zabbix_url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json-rpc"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise ServiceError(f"zabbix API {method}: {answer['error'].get('data') or answer['error']}")
        return answer["result"]

    def api_version(self) -> str:
        return self.api_call("apiinfo.version", [])

    def healthy(self) -> bool:
        if not (self.server_alive() and port_open(self.settings.zabbix_server_port)):
            return False
        try:
            self.api_version()
            token = self.api_call("user.login", {"username": self.settings.zabbix_user,
                                                 "password": self.settings.zabbix_password.reveal()})
            self.api_call("user.logout", [], auth=token)
        except (OSError, ValueError, ServiceError):
            return False
        return True

    def up(self) -> None:
        self.up_locked(self.lock_file, self._bring_up)

    def _bring_up(self) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.install()
        self.start()
        wait_until(self.healthy, self.start_timeout, "service zabbix", self.log_file)
