"""The few typed errors of otelingest.

Each maps to one behaviour: a bad config stops start-up with a distinct exit code; a storage
error is retried or counted by the writer; a decode error is the client's fault (400).
"""

from __future__ import annotations


class OtelingestError(Exception):
    """Base of every error otelingest raises on purpose."""


class ConfigError(OtelingestError):
    """The configuration is invalid; the message is one line naming key, value and what is allowed."""


class StorageError(OtelingestError):
    """ClickHouse refused or could not be reached.

    ``retryable`` says whether the same request may succeed later (timeouts, overload, network)
    or never will (unknown table or column, type mismatch).
    """

    def __init__(self, message: str, *, retryable: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        # ClickHouse's error code when it answered with one.
        self.code = code


class SchemaError(OtelingestError):
    """Migrations could not be rendered or applied."""


class BootError(OtelingestError):
    """The daemon (or one worker) cannot start: the message is one line naming the cause and the
    config key or flag to change. Exit EXIT_BOOT, never a restart loop."""


# Process exit codes, so a supervisor (ours or systemd) tells a bad config from a crash and does
# not restart into a loop.
EXIT_OK = 0
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h
EXIT_BOOT = 3  # failed to boot (gunicorn's WORKER_BOOT_ERROR)
