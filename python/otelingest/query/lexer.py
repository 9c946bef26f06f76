"""The tokenizer loop the hand-written query parsers share (LogQL, TraceQL)."""

from __future__ import annotations

import re


def lex(pattern: re.Pattern[str], text: str) -> tuple[list[tuple[str, str]], int | None]:
    """``(kind, text)`` tokens of ``text`` by the named groups of ``pattern`` (a group named ``ws``
    is dropped), and the position where no token matches (None when all of ``text`` was read)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m:
            return tokens, pos
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens, None
