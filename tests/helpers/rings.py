"""Rings for tests: a real shared-memory ring file with both of its ends in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otelingest._native import RingConsumer, RingFile, RingProducer


class RingEnds:
    """The producer and the consumer of one ring, side by side: the test pushes (as a receiver)
    and passes this to a writer, which reads, releases and rewinds (as its consumer)."""

    def __init__(self, path: Path) -> None:
        self.producer = RingProducer.attach(str(path))
        self.consumer = RingConsumer.attach(str(path))
        self.try_push = self.producer.try_push
        self.read = self.consumer.read
        self.release = self.consumer.release
        self.rewind = self.consumer.rewind

    @property
    def pending_bytes(self) -> int:
        return self.consumer.pending_bytes

    @property
    def used_bytes(self) -> int:
        return self.consumer.used_bytes

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()


def make_ring(path: Path, capacity: int, *, attach: bool = False, reuse: Any = None) -> RingEnds:
    """A new ring at ``path`` and its ends; with ``attach``, new ends of the existing ring (the old
    ones, ``reuse``, are closed first: one producer and one consumer per ring, as when a writer
    dies and another takes over)."""
    if attach:
        if reuse is not None:
            reuse.close()
    else:
        RingFile.create(str(path), capacity).close()
    return RingEnds(path)
