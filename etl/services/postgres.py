"""monetl's own PostgreSQL 15 cluster (not Debian's `main`): data in run_dir/postgres, bound to
127.0.0.1:pg_port, holding the Zabbix 6.0 database, the empty KCMM database, a read-only role and
the local Airflow's metadata database (role `airflow`, password generated into run_dir).

Root cannot run PostgreSQL, so every server-side command runs as the `postgres` OS user; the
service directories are made traversable (not readable) for it."""

from __future__ import annotations

import gzip
import os
import pwd
import secrets
import stat
import subprocess
from pathlib import Path

from etl.errors import ServiceError
from etl.services.base import Service, wait_until
from etl.services.support import write_private

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ZABBIX_SQL_DIR = Path("/usr/share/zabbix-server-pgsql")
ZABBIX_SQL_FILES = ("schema.sql.gz", "images.sql.gz", "data.sql.gz")
# zabbix_sender comes with zabbix-agent (`zabbix-sender` is only a virtual package there, which
# dpkg-query never reports as installed).
APT_PACKAGES = ("postgresql", "zabbix-server-pgsql", "zabbix-frontend-php", "php-pgsql", "php-cli",
                "zabbix-agent")
OS_USER = "postgres"

# (role, password, database it owns or None). Local stack only; real deployments bring their own.
ROLES = (("zabbix", "zabbix", "zabbix"), ("kcmm", "kcmm", "kcmm"), ("monetl_ro", "monetl_ro", None))
READ_ONLY_ROLE = "monetl_ro"
# The local Airflow's metadata DB: SQLite there made API calls and `backfill create` fail with
# "database is locked" while the scheduler wrote (a CI run failed on it). Its password is generated,
# never written in code: see airflow_db_url().
AIRFLOW_ROLE = "airflow"


def grant_traverse(path: Path) -> None:
    """Let other OS users (postgres, zabbix) reach `path` by adding only the search bit (o+x) to its
    ancestors: /root is 0700 and the service files live under ~/.monetl."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)


def as_user(user: str) -> dict:
    """subprocess keywords to run as `user` with its own groups: `user=` alone keeps root's group,
    and /root's group bits (none) then deny what its "other" bit would allow."""
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def chown_to(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def missing_packages(packages=APT_PACKAGES) -> list[str]:
    missing = []
    for pkg in packages:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if "install ok installed" not in proc.stdout:
            missing.append(pkg)
    return missing


def apt_install(packages: list[str]) -> None:
    """Same as scripts/setup.sh, for a machine where only `monetl services install` is run."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"Debian packages missing: {' '.join(packages)}; run scripts/setup.sh "
                           "(needs root or sudo)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise ServiceError(f"{' '.join(argv[:2])} failed: {(proc.stderr or proc.stdout)[-2000:]}")


class Postgres(Service):
    name = "postgres"
    start_timeout = 120.0

    # -- paths -------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        # Own socket dir: Debian's clusters use /var/run/postgresql with the same socket names.
        return self.settings.run_dir / "postgres-socket"

    @property
    def lock_file(self) -> Path:
        return self.settings.run_dir / "postgres.lock"

    def endpoint(self) -> str:
        return f"127.0.0.1:{self.settings.pg_port} (databases zabbix, kcmm, airflow; data {self.data_dir})"

    # -- install -----------------------------------------------------------
    def install(self) -> None:
        """No-op when the Debian packages are there (scripts/setup.sh installs them)."""
        if (PG_BIN / "initdb").exists() and all((ZABBIX_SQL_DIR / f).exists() for f in ZABBIX_SQL_FILES):
            return
        apt_install(missing_packages())

    # -- process -----------------------------------------------------------
    def _pg(self, tool: str, *args: str, what: str, timeout: float = 600, input: str | None = None) -> str:
        proc = subprocess.run([str(PG_BIN / tool), *args], capture_output=True, text=True, cwd="/",
                              **as_user(OS_USER), timeout=timeout, input=input)
        if proc.returncode != 0:
            raise ServiceError(f"postgres: {what} failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout)[-2000:]}")
        return proc.stdout

    def _prepare_dirs(self) -> None:
        for d in (self.settings.run_dir, self.settings.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
            grant_traverse(d)
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            chown_to(d, OS_USER)
        os.chmod(self.data_dir, 0o700)
        self.log_file.touch(exist_ok=True)
        chown_to(self.log_file, OS_USER)

    def _initdb(self) -> None:
        self._pg("initdb", "-D", str(self.data_dir), "-U", "postgres", "--encoding=UTF8", "--locale=C.UTF-8",
                 "--auth-local=peer", "--auth-host=md5", what="initdb")
        # Only TCP from 127.0.0.1 with passwords, plus the postgres OS user over our own socket.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all postgres peer\n"
            "host  all all 127.0.0.1/32 md5\n")
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write("\n# monetl local stack\n"
                     "listen_addresses = '127.0.0.1'\n"
                     f"unix_socket_directories = '{self.socket_dir}'\n"
                     "max_connections = 200\n"
                     "shared_buffers = 128MB\n"
                     # Demo/test data is re-creatable; bulk seeding should not wait on every commit.
                     "synchronous_commit = off\n"
                     "max_wal_size = 2GB\n"
                     "timezone = 'UTC'\n")
        chown_to(self.data_dir / "pg_hba.conf", OS_USER)

    def server_ready(self) -> bool:
        proc = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                               str(self.settings.pg_port), "-t", "2"], capture_output=True)
        return proc.returncode == 0

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        # Port on the command line, not in postgresql.conf: a changed MONETL_PG_PORT applies on next start.
        # No parallel query: on the 2 cores Elasticsearch, Zabbix and monetl share, a parallel worker
        # only moves an index scan's work to two more processes (the frontend's history.get counts
        # of 92,000 ids planned parallel: ~210 ms of execution CPU a statement instead of ~70; a design-scale
        # API interval's PostgreSQL 9.0 -> 7.1-7.7 core-seconds). A command-line setting, so
        # existing data directories get it too.
        self._pg("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
                 "-o", f"-p {self.settings.pg_port} -c max_parallel_workers_per_gather=0", what="pg_ctl start",
                 timeout=90)

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        status = subprocess.run([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)], capture_output=True,
                                cwd="/", **as_user(OS_USER))
        if status.returncode == 3:  # not running: a stale postmaster.pid after a crash
            return
        self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60",
                 what="pg_ctl stop", timeout=90)

    def pid(self) -> int | None:
        """The postmaster's pid (first line of postmaster.pid), or None when it is not running."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- provisioning ------------------------------------------------------
    def psql(self, sql: str, db: str = "postgres", what: str = "psql") -> str:
        """Run SQL as the superuser over our own unix socket; output unaligned, tuples only. The SQL
        goes in on stdin, not as -c: CREATE ROLE ... PASSWORD would otherwise be in the process list."""
        return self._pg("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                        "-p", str(self.settings.pg_port), "-d", db, what=what, input=sql)

    @property
    def airflow_password_file(self) -> Path:
        return self.settings.run_dir / "postgres-airflow.password"

    def airflow_db_url(self) -> str:
        """SQLAlchemy URL of the Airflow metadata DB (provisioned by up())."""
        try:
            password = self.airflow_password_file.read_text().strip()
        except OSError:
            raise ServiceError(f"postgres: {self.airflow_password_file} missing; "
                               "`monetl services up postgres` provisions the Airflow database") from None
        return (f"postgresql+psycopg2://{AIRFLOW_ROLE}:{password}@127.0.0.1:{self.settings.pg_port}"
                f"/{AIRFLOW_ROLE}")

    def _ensure_role_and_db(self, role: str, password: str | None, db: str | None) -> None:
        """Role `role` (with `password`, or none yet) and database `db` it owns, unless they exist."""
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").strip():
            self.psql(f"CREATE ROLE {role} LOGIN" + (f" PASSWORD '{password}'" if password else ""),
                      what=f"create role {role}")
        if db and not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip():
            self.psql(f"CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8' TEMPLATE template0",
                      what=f"create database {db}")

    def _provision_airflow(self) -> None:
        self._ensure_role_and_db(AIRFLOW_ROLE, None, AIRFLOW_ROLE)
        if not self.airflow_password_file.exists():
            # A lost file only means a new password: the role keeps its database. The file is
            # written after the role has the password, so a file always names a valid one.
            password = secrets.token_urlsafe(24)
            self.psql(f"ALTER ROLE {AIRFLOW_ROLE} PASSWORD '{password}'", what=f"password of {AIRFLOW_ROLE}")
            write_private(self.airflow_password_file, password + "\n")

    def _provision(self) -> None:
        self._provision_airflow()
        for role, password, db in ROLES:
            self._ensure_role_and_db(role, password, db)
        state = self._zabbix_db_state()
        if state == "partial":
            # The packaged SQL commits in parts, so an interrupted load can leave half a schema:
            # only this service ever creates the database, so start it over.
            self.psql("DROP DATABASE zabbix", what="drop half-loaded zabbix database")
            self.psql("CREATE DATABASE zabbix OWNER zabbix ENCODING 'UTF8' TEMPLATE template0",
                      what="create database zabbix")
        if state != "loaded":
            self._load_zabbix_schema()
        # Read-only extraction user: SELECT on every table, now and for tables added later.
        self.psql(f"GRANT CONNECT ON DATABASE zabbix TO {READ_ONLY_ROLE}; "
                  f"GRANT USAGE ON SCHEMA public TO {READ_ONLY_ROLE}; "
                  f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READ_ONLY_ROLE}; "
                  f"ALTER DEFAULT PRIVILEGES FOR ROLE zabbix IN SCHEMA public "
                  f"GRANT SELECT ON TABLES TO {READ_ONLY_ROLE}", db="zabbix", what="grant read-only role")

    def _zabbix_db_state(self) -> str:
        """"empty", "partial" (tables but not the data rows, loaded last) or "loaded"."""
        if self.psql("SELECT to_regclass('public.dbversion') IS NOT NULL", db="zabbix").strip() != "t":
            return "empty"
        admin = self.psql("SELECT count(*) FROM users WHERE username = 'Admin'", db="zabbix").strip()
        return "loaded" if admin == "1" else "partial"

    def _load_zabbix_schema(self) -> None:
        sql = "".join(gzip.decompress((ZABBIX_SQL_DIR / f).read_bytes()).decode() for f in ZABBIX_SQL_FILES)
        # One transaction as the owner: an interrupted load leaves nothing behind, the next up retries.
        proc = subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.settings.pg_port), "-U", "zabbix", "-d", "zabbix"],
                              input=sql, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PGPASSWORD": "zabbix"})
        if proc.returncode != 0:
            raise ServiceError(f"postgres: loading the Zabbix schema failed: {(proc.stderr or proc.stdout)[-2000:]}")

    # -- health ------------------------------------------------------------
    def healthy(self) -> bool:
        """A real login as the Zabbix user that sees the loaded schema and the other roles."""
        import psycopg2

        try:
            conn = psycopg2.connect(host="127.0.0.1", port=self.settings.pg_port, user="zabbix",
                                    password="zabbix", dbname="zabbix", connect_timeout=3)
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_roles WHERE rolname IN ('kcmm', %s, %s)",
                            (READ_ONLY_ROLE, AIRFLOW_ROLE))
                roles = cur.fetchone()[0]
                cur.execute("SELECT to_regclass('public.users') IS NOT NULL")
                if roles != 3 or not self.airflow_password_file.exists() or not cur.fetchone()[0]:
                    return False
                cur.execute("SELECT count(*) FROM users WHERE username = 'Admin'")
                return cur.fetchone()[0] == 1
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def up(self) -> None:
        self.up_locked(self.lock_file, self._bring_up)

    def _bring_up(self) -> None:
        self.install()
        self._prepare_dirs()
        if not self.server_ready():
            self.start()
        wait_until(self.server_ready, self.start_timeout, "service postgres", self.log_file)
        self._provision()
        wait_until(self.healthy, 30, "service postgres", self.log_file)
