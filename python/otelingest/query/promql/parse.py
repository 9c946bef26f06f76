"""PromQL text to an expression tree (by ``promql-parser``), within the service's limits."""

from __future__ import annotations

from typing import Any

import promql_parser as pp

from ..errors import BadRequest
from ..timeparse import NS

MAX_QUERY_LEN = 64 * 1024


def parse(query: str) -> Any:
    if not query or not query.strip():
        raise BadRequest("query is empty")
    if len(query) > MAX_QUERY_LEN:
        raise BadRequest("query too long")
    try:
        return pp.parse(query)
    except BaseException as e:  # the parser raises ValueError and Rust panics alike
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise BadRequest(f"parse error: {e}") from None


def nanos(d: Any) -> int:
    """A parsed duration (a range, an offset) in nanoseconds; 0 when absent."""
    return int(round(d.total_seconds() * NS)) if d is not None else 0
