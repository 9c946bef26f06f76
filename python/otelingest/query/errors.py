"""Errors of the query service; each API renders them in its own format."""

from __future__ import annotations


class QueryError(Exception):
    """A query that cannot be answered. ``status`` is the HTTP status to answer with."""

    status = 500
    error_type = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(QueryError):
    """The client's request is invalid (bad field, malformed PromQL/LogQL, absurd range): 400."""

    status = 400
    error_type = "bad_data"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFound(QueryError):
    status = 404
    error_type = "not_found"


class Unprocessable(QueryError):
    """Valid but cannot be executed within the limits (too many rows/bytes): 422."""

    status = 422
    error_type = "execution"


class Unavailable(QueryError):
    """Timeout or storage unavailable: 503."""

    status = 503
    error_type = "timeout"
