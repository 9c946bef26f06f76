"""Exponential restart delay, shared by the worker table and the embedded ClickHouse's restarts."""

from __future__ import annotations

import time

INITIAL_S = 0.5
MAX_S = 30.0
# A process that stayed up this long is healthy again: its next crash restarts at the initial delay.
RESET_S = 60.0


class Backoff:
    """Doubles each restart, up to ``MAX_S``; back to ``INITIAL_S`` once the process stayed up ``RESET_S``."""

    def __init__(self) -> None:
        self.delay = INITIAL_S
        self.started_at = 0.0

    def started(self) -> None:
        self.started_at = time.monotonic()

    def next_delay(self) -> float:
        if time.monotonic() - self.started_at > RESET_S:
            self.delay = INITIAL_S
        d = self.delay
        self.delay = min(self.delay * 2, MAX_S)
        return d
