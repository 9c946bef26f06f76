"""Rings for tests: the real shared-memory Ring once built; until then a stand-in with the same
two-phase contract (read, release, rewind; monotonic end offsets)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any


class MemRing:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: deque[tuple[int, bytes]] = deque()  # unreleased, in order
        self.head = 0  # end offset of the last pushed record
        self.cursor = 0  # index of the next record to read among self.records

    @property
    def used_bytes(self) -> int:
        return sum(len(r) for _, r in self.records)

    @property
    def pending_bytes(self) -> int:
        return sum(len(r) for _, r in list(self.records)[self.cursor:])

    def try_push(self, record: bytes) -> bool:
        if self.used_bytes + len(record) > self.capacity:
            return False
        self.head += len(record) + 8
        self.records.append((self.head, bytes(record)))
        return True

    def read(self) -> tuple[int, bytes] | None:
        if self.cursor >= len(self.records):
            return None
        item = self.records[self.cursor]
        self.cursor += 1
        return item

    def release(self, offset: int) -> None:
        while self.records and self.records[0][0] <= offset:
            self.records.popleft()
            self.cursor -= 1

    def rewind(self) -> None:
        self.cursor = 0


def real_ring() -> Any:
    try:
        from otelingest.worker import ring_class

        return ring_class()
    except ImportError:
        return None


def make_ring(path: Path, capacity: int, *, attach: bool = False, reuse: Any = None) -> Any:
    Ring = real_ring()
    if Ring is not None:
        if attach and reuse is not None:
            reuse.close()  # one consumer per ring: the "dead" writer's mapping goes first
        return Ring.attach(str(path)) if attach else Ring.create(str(path), capacity)
    if attach:
        reuse.rewind()
        return reuse
    return MemRing(capacity)
