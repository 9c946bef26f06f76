"""ClickHouse client connections (clickhouse-connect over HTTP), built from the config."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from ..config import ClickHouseConfig
from ..errors import StorageError

# ClickHouse error codes that no retry will fix (Vector's sink makes the same split).
NON_RETRYABLE_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    16,  # NO_SUCH_COLUMN_IN_TABLE
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  # CANNOT_READ_ALL_DATA
    36,  # BAD_ARGUMENTS
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    44,  # ILLEGAL_COLUMN
    47,  # UNKNOWN_IDENTIFIER
    53,  # TYPE_MISMATCH
    60,  # UNKNOWN_TABLE
    62,  # SYNTAX_ERROR
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    81,  # UNKNOWN_DATABASE
    117,  # INCORRECT_DATA
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    192,  # UNKNOWN_USER
    194,  # REQUIRED_PASSWORD
    516,  # AUTHENTICATION_FAILED
})
# The server refused who we are: a boot stops with the credentials' keys named.
CREDENTIAL_CODES = frozenset({192, 194, 516})  # UNKNOWN_USER, REQUIRED_PASSWORD, AUTHENTICATION_FAILED


def base_url(cfg: ClickHouseConfig) -> str:
    return cfg.url if cfg.url else f"http://127.0.0.1:{cfg.embedded_http_port}"


def connect(
    cfg: ClickHouseConfig,
    *,
    read_only: bool = False,
    with_database: bool = True,
    settings: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Client:
    """A client for the configured server; ``read_only`` uses the read-only user when one is set.

    Raises:
        StorageError: the server cannot be reached or refused the credentials.
    """
    parts = urlsplit(base_url(cfg))
    secure = parts.scheme == "https"
    user, password = cfg.user, cfg.resolved_password()
    if read_only and cfg.read_only_user:
        user, password = cfg.read_only_user, cfg.resolved_read_only_password()
    try:
        return clickhouse_connect.get_client(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8443 if secure else 8123),
            username=user,
            password=password,
            database=cfg.database if with_database else "",
            secure=secure,
            compress=cfg.compression if cfg.compression != "none" else False,
            connect_timeout=cfg.connect_timeout_s,
            send_receive_timeout=cfg.query_timeout_s,
            settings=settings or {},
            autogenerate_session_id=False,
            **kwargs,
        )
    except Exception as e:  # clickhouse-connect raises several types on connect
        raise as_storage_error(e) from e


class LazyClient:
    """A client connected on first use and dropped after a failure, for periodic checks that must
    outlive ClickHouse going away: the next :meth:`get` connects again."""

    def __init__(self, cfg: ClickHouseConfig) -> None:
        self.cfg = cfg
        self._client: Client | None = None

    def get(self) -> Client:
        """Raises: StorageError, as :func:`connect`."""
        if self._client is None:
            self._client = connect(self.cfg, with_database=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._client = None


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    text = str(exc)
    marker = "Code: "
    i = text.find(marker)
    if i < 0:
        return None
    digits = ""
    for ch in text[i + len(marker):]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def as_storage_error(exc: BaseException) -> StorageError:
    """Classify a client exception: network and server overload are retryable, bad requests are not."""
    if isinstance(exc, StorageError):
        return exc
    code = error_code(exc)
    retryable = code not in NON_RETRYABLE_CODES
    if isinstance(exc, OperationalError):
        retryable = True
    elif not isinstance(exc, (ClickHouseError, DatabaseError, OSError)):
        retryable = True
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(first_line[:500], retryable=retryable, code=code)
