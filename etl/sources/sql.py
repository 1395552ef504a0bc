"""SQLAlchemy plumbing shared by the database-mode sources (Zabbix DB, KCMM DB): one engine per
source object, made on first use; errors that name the database (never the password) and the
driver's reason."""

from __future__ import annotations

from etl.errors import SourceError


class SqlSource:
    """Mixin: the subclass names `db_label` ("Zabbix DB") and sets `_url` in its __init__."""

    db_label = ""
    _url: str
    _engine = None

    @property
    def engine(self):
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self._url, pool_pre_ping=True, connect_args=self._timeouts())
        return self._engine

    def _timeouts(self) -> dict:
        """Driver arguments so that a database that hangs fails the run instead of holding it:
        a connect timeout, and a server-side limit on each statement (PostgreSQL; MySQL: a read
        timeout). Other drivers get none and say so at debug level."""
        from sqlalchemy.engine import make_url

        settings = getattr(self, "settings", None)
        connect = int(getattr(settings, "db_connect_timeout_seconds", 10))
        statement = int(getattr(settings, "db_statement_timeout_seconds", 900))
        driver = make_url(self._url).get_backend_name()
        if driver == "postgresql":
            return {"connect_timeout": connect, "options": f"-c statement_timeout={statement * 1000}"}
        if driver in ("mysql", "mariadb"):
            return {"connect_timeout": connect, "read_timeout": statement}
        import logging

        logging.getLogger(__name__).debug("%s: no timeouts known for driver %s", self.db_label, driver)
        return {}

    def _where(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self._url)
        return f"{url.host}:{url.port}/{url.database} as {url.username}"

    def _fail(self, what: str, exc: Exception) -> SourceError:
        return SourceError(f"{self.db_label} {self._where()}: {what}: {str(getattr(exc, 'orig', exc)).strip()[:300]}")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
