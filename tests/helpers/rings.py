"""Rings for tests: the real shared-memory ``Ring`` in a temporary file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otelingest._native import Ring


def make_ring(path: Path, capacity: int, *, attach: bool = False, reuse: Any = None) -> Any:
    """A new ring at ``path``; with ``attach``, a second mapping of it (the old one, ``reuse``,
    is closed first: one consumer per ring, as when a writer dies and another takes over)."""
    if attach:
        if reuse is not None:
            reuse.close()
        return Ring.attach(str(path))
    return Ring.create(str(path), capacity)
