"""Structured logging: one line per event, logfmt or JSON, naming the process role."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import msgspec

# Record attributes that are not event fields; uvicorn's color_message repeats msg with ANSI colours.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord, role: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "role": role,
        "pid": record.process,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    # Extra fields passed as logging.info(..., extra={...}).
    for k, v in record.__dict__.items():
        if k not in _STANDARD and not k.startswith("_"):
            out[k] = v
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(v: Any) -> str:
    s = str(v)
    # Quote with JSON string escaping: every control character escaped, still one line.
    if s == "" or any(c in s for c in ' ="\\') or any(ord(c) < 0x20 or c == "\x7f" for c in s):
        return json.dumps(s, ensure_ascii=False)
    return s


class LogfmtFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record, self.role).items())


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        return msgspec.json.encode(_fields(record, self.role)).decode()


def configure(role: str, fmt: str = "logfmt", level: str = "info") -> None:
    """Set up the root logger of this process (each process calls it once, for its own role)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else LogfmtFormatter(role))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    os.environ["OTELINGEST_LOG_FORMAT"] = fmt
    os.environ["OTELINGEST_LOG_LEVEL"] = level
    # Libraries that log every request at INFO would drown the daemon's own lines.
    for noisy in ("urllib3", "clickhouse_connect", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
