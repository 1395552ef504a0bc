"""One exception type per failure an operator can act on. Messages name the record and the reason."""


class MonetlError(Exception):
    """Base of every error monetl raises on purpose; the CLI prints these without a traceback."""


class ConfigError(MonetlError):
    """A setting is missing or malformed."""


class ServiceError(MonetlError):
    """A local service could not be installed, started, stopped or reached."""


class SourceError(MonetlError):
    """A source (Zabbix API/DB, KCMM DB/CSV, log file) could not be read."""


class StoreError(MonetlError):
    """Elasticsearch or the lake refused or lost a write or read."""


class VerificationError(MonetlError):
    """Data written somewhere does not match its origin; nothing was deleted."""


class WouldDropPointsError(VerificationError):
    """Publishing would leave a lake day with fewer points of some item than it or the index held;
    refused (the message gives the per-item numbers) unless the operator asks for --replace."""


class BadRecord(MonetlError):
    """One input record is unusable; it belongs in quarantine, the rest of its batch goes on."""

    def __init__(self, record_ref: str, reason: str):
        super().__init__(f"{record_ref}: {reason}")
        self.record_ref = record_ref
        self.reason = reason


class StoreUnavailable(StoreError):
    """Elasticsearch could not be reached (or kept timing out) for the whole retry budget."""


class IndexWriteBlocked(StoreError):
    """Writes to an index stayed blocked (a compaction in progress) for the whole wait."""
