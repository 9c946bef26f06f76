"""Times and durations as the APIs receive them, parsed strictly into integer nanoseconds.

Accepted: RFC3339 (``2024-05-01T10:00:00Z``, fractional seconds, offsets), unix nanoseconds
(the design's API and Loki), unix seconds as float (Prometheus), microseconds (Jaeger), and
durations ``1h30m``, ``250ms``, ``1.5s`` or bare seconds.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from .errors import BadRequest

NS = 1_000_000_000
_UNITS_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS,
    "d": 86400 * NS, "w": 7 * 86400 * NS, "y": 365 * 86400 * NS,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
# 1970 .. 2262: what DateTime64(9) holds.
MAX_NS = 2**63 - 1


def rfc3339_ns(text: str, field: str) -> int:
    m = _RFC3339_RE.match(text)
    if not m:
        raise BadRequest(f"invalid time {text!r}: expected RFC3339 or a unix timestamp", field=field)
    date, clock, frac, tz = m.groups()
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        dt = datetime.fromisoformat(f"{date}T{clock}{tz}")
    except ValueError:
        raise BadRequest(f"invalid time {text!r}", field=field) from None
    ns = int(dt.timestamp()) * NS + int((frac or "0").ljust(9, "0"))
    return _bounded(ns, text, field)


def _bounded(ns: int, text: str, field: str) -> int:
    if ns < 0 or ns > MAX_NS:
        raise BadRequest(f"time {text!r} out of range", field=field)
    return ns


def parse_time(value: str | int | float, field: str, *, numeric_unit_ns: int) -> int:
    """A timestamp in nanoseconds; bare numbers are in units of ``numeric_unit_ns``."""
    if isinstance(value, bool):
        raise BadRequest("invalid time", field=field)
    if isinstance(value, (int, float)):
        return _from_number(float(value) if isinstance(value, float) else value, str(value), field, numeric_unit_ns)
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return _from_number(int(text), text, field, numeric_unit_ns)
    if re.fullmatch(r"-?\d+\.\d*|-?\d*\.\d+|-?\d+(?:\.\d*)?[eE][+-]?\d+", text):
        return _from_number(float(text), text, field, numeric_unit_ns)
    return rfc3339_ns(text, field)


def _from_number(v: int | float, text: str, field: str, unit_ns: int) -> int:
    if isinstance(v, float):
        if not math.isfinite(v):
            raise BadRequest(f"invalid time {text!r}", field=field)
        ns = round(v * unit_ns)
    else:
        ns = v * unit_ns
    return _bounded(ns, text, field)


def time_ns(value: str | int | float, field: str) -> int:
    """The design's API and Loki: RFC3339 or unix nanoseconds."""
    return parse_time(value, field, numeric_unit_ns=1)


def prom_time_ns(value: str, field: str) -> int:
    """Prometheus: RFC3339 or unix seconds (float)."""
    return parse_time(value, field, numeric_unit_ns=NS)


def loki_time_ns(value: str, field: str) -> int:
    """Loki accepts nanoseconds, but also seconds (float) as Grafana sometimes sends."""
    text = value.strip()
    if re.fullmatch(r"\d{1,11}(\.\d+)?", text):  # up to year 5138 in seconds: not nanoseconds
        return parse_time(text, field, numeric_unit_ns=NS)
    return parse_time(text, field, numeric_unit_ns=1)


def duration_ns(value: str | int | float, field: str) -> int:
    """``1h30m``, ``250ms``, ``1.5s``; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise BadRequest(f"invalid duration {value!r}", field=field)
        return round(value * NS)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return round(float(text) * NS)
    pos, total = 0, 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += round(float(m.group(1)) * _UNITS_NS[m.group(2)])
        pos = m.end()
    if pos != len(text) or not text:
        raise BadRequest(f"invalid duration {text!r}: expected e.g. 15s, 1m30s, 250ms", field=field)
    if total > MAX_NS:
        raise BadRequest(f"duration {text!r} out of range", field=field)
    return total
