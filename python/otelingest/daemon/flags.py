"""The shared status page: a small memory-mapped file in ``data_dir/run`` that every process maps.

The supervisor creates it and owns the flags; workers read a flag with one byte load in their hot
path and write their own slot (heartbeat, bytes they hold). No locks: every field has one writer,
and a torn read of an 8-byte slot at worst delays a decision by one tick.

Layout (little endian)::

    0   u8   refuse         1 = receivers answer 429/RESOURCE_EXHAUSTED (memory above the soft limit)
    1   u8   pause_writers  1 = writers stop taking from the rings (memory above the hard limit)
    2   u8   storage_ready  1 = ClickHouse answers and the schema is current
    3   u8   disk_low       1 = receivers answer 503/UNAVAILABLE (ClickHouse's disk under its floor)
    4   u8   schema_pending 1 = the schema is not current yet (start-up, a migration running)
    5   u8   insert_hold    1 = writers start no INSERT: set while the schema is not current, except
                            while a rekey's bulk copy runs (clickhouse/rekey.py: the hold covers only
                            the ALTERs before it and each table's final pass and exchange)
    8   u64  usage          bytes counted by the memory limiter at its last tick (information)
    16  u64  ch_reserved    bytes ClickHouse has reserved on its disk (the spill counts them taken)
    64 + 16*slot:  f64 heartbeat (CLOCK_MONOTONIC, shared by all processes)   u64 held bytes

Slots: receiver i is slot i; writer j is slot ``receivers + j``; the query process the last one.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

MAGIC = b"OTSTAT01"
HEADER = 64
SLOT = 16
_MAGIC_AT = 24
REFUSE, PAUSE_WRITERS, STORAGE_READY, DISK_LOW, SCHEMA_PENDING, INSERT_HOLD = 0, 1, 2, 3, 4, 5
_RESERVED_AT = 16
_USAGE = struct.Struct("<Q")
_SLOT = struct.Struct("<dQ")


class StatusPage:
    def __init__(self, path: Path, mm: mmap.mmap, slots: int) -> None:
        self.path = path
        self._mm = mm
        self.slots = slots

    @classmethod
    def create(cls, path: Path, slots: int) -> "StatusPage":
        size = HEADER + SLOT * slots
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(b"\0" * size)
        os.replace(tmp, path)
        page = cls.attach(path, check=False)
        page._mm[_MAGIC_AT:_MAGIC_AT + 8] = MAGIC
        return page

    @classmethod
    def attach(cls, path: Path, *, check: bool = True) -> "StatusPage":
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 0)
        if check and mm[_MAGIC_AT:_MAGIC_AT + 8] != MAGIC:
            raise ValueError(f"{path}: not an otelingest status page")
        return cls(Path(path), mm, (len(mm) - HEADER) // SLOT)

    # Flags: one byte each, so the hot-path check is one load.
    def flag(self, which: int) -> bool:
        return self._mm[which] != 0

    def set_flag(self, which: int, on: bool) -> None:
        self._mm[which] = 1 if on else 0

    @property
    def refuse(self) -> bool:
        return self._mm[REFUSE] != 0

    @property
    def pause_writers(self) -> bool:
        return self._mm[PAUSE_WRITERS] != 0

    @property
    def storage_ready(self) -> bool:
        return self._mm[STORAGE_READY] != 0

    @property
    def schema_pending(self) -> bool:
        return self._mm[SCHEMA_PENDING] != 0

    @property
    def insert_hold(self) -> bool:
        return self._mm[INSERT_HOLD] != 0

    @property
    def disk_low(self) -> bool:
        return self._mm[DISK_LOW] != 0

    @property
    def clickhouse_reserved(self) -> int:
        return _USAGE.unpack_from(self._mm, _RESERVED_AT)[0]

    @clickhouse_reserved.setter
    def clickhouse_reserved(self, value: int) -> None:
        _USAGE.pack_into(self._mm, _RESERVED_AT, max(0, value))

    @property
    def usage(self) -> int:
        return _USAGE.unpack_from(self._mm, 8)[0]

    @usage.setter
    def usage(self, value: int) -> None:
        _USAGE.pack_into(self._mm, 8, max(0, value))

    def beat(self, slot: int, held_bytes: int = 0) -> None:
        _SLOT.pack_into(self._mm, HEADER + SLOT * slot, time.monotonic(), max(0, held_bytes))

    def reset_slot(self, slot: int) -> None:
        """Before (re)starting the slot's process: a fresh start counts as a heartbeat."""
        self.beat(slot, 0)

    def slot(self, slot: int) -> tuple[float, int]:
        hb, held = _SLOT.unpack_from(self._mm, HEADER + SLOT * slot)
        return hb, held

    def close(self) -> None:
        try:
            self._mm.close()
        except BufferError:  # a view still exported; the mapping goes with the process
            pass
