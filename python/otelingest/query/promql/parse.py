"""PromQL text to an expression tree (by ``promql-parser``), within the service's limits."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import promql_parser as pp

from ..errors import BadRequest
from ..timeparse import NS

MAX_QUERY_LEN = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# Prometheus 2's name of double_exponential_smoothing, which Prometheus 2 dashboards still use; the
# parser knows only the new name. Quoted strings are matched first so a label value is never rewritten.
_RENAMED = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|\bholt_winters(?=\s*\()""")


def _new_names(query: str) -> str:
    if "holt_winters" not in query:
        return query
    return _RENAMED.sub(lambda m: m.group(1) or "double_exponential_smoothing", query)


def parse(query: str) -> Any:
    if not query or not query.strip():
        raise BadRequest("query is empty")
    if len(query) > MAX_QUERY_LEN:
        raise BadRequest("query too long")
    try:
        return pp.parse(_new_names(query))
    except BaseException as e:  # the parser raises ValueError and Rust panics alike
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise BadRequest(f"parse error: {e}") from None


def nanos(d: Any) -> int:
    """A parsed duration (a range, an offset) in nanoseconds; 0 when absent."""
    return int(round(d.total_seconds() * NS)) if d is not None else 0


def at_ns(at: Any, start_ns: int, end_ns: int) -> int:
    """An ``@`` modifier's time in nanoseconds: its timestamp, or the query's start or end
    (``start()``/``end()``; both the evaluation time of an instant query)."""
    kind = str(at.type)
    if kind.endswith("Start"):
        return start_ns
    if kind.endswith("End"):
        return end_ns
    try:
        dt = at.at  # promql-parser panics on a time before 1970
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise BadRequest("unsupported: an @ time before 1970") from None
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * NS + d.microseconds * 1000
