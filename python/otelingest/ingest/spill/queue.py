"""The spill queue: segment files, ledger, budget and quarantine (spec in the package doc)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

from .record import HEADER, HEADER_SIZE, MAX_PAYLOAD, Buffer, CorruptRecord, decode, encode_header, resync

log = logging.getLogger("otelingest.spill")

SEGMENT_RE = re.compile(r"^seg-(\d{20})\.spill$")
LEDGER = "ledger.json"
QUARANTINE = "quarantine"
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
BATCH_FSYNC_INTERVAL_S = 1.0

Fsync = Literal["always", "batch", "never"]


class SpillFull(Exception):
    """Appending would exceed the disk budget: refuse upstream, never drop."""


@dataclass(frozen=True)
class SpilledBatch:
    table: str
    token: str
    items: int
    payload: bytes
    segment: int
    offset: int
    end: int  # offset just past this record in its segment


@dataclass
class SpillStats:
    spilled_batches: int = 0
    spilled_items: int = 0
    spilled_bytes: int = 0
    replayed_batches: int = 0
    replayed_items: int = 0
    quarantined_regions: int = 0
    quarantined_bytes: int = 0


def _seg_name(seg: int) -> str:
    return f"seg-{seg:020d}.spill"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpillQueue:
    """A FIFO of batches on disk, safe to use from several threads of one process.

    Only one process may open a directory at a time (each writer has its own).
    """

    def __init__(
        self,
        directory: Path,
        *,
        budget_bytes: int,
        fsync: Fsync = "batch",
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        room: Callable[[int], str | None] = lambda size: None,
    ) -> None:
        """``room(size)``: None if ``size`` more bytes may be written, else why not (the free-space
        floor of :mod:`otelingest.daemon.diskfloor`); the append then raises SpillFull."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / QUARANTINE).mkdir(exist_ok=True)
        self.budget_bytes = budget_bytes
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self.room = room
        self.stats = SpillStats()
        self._lock = threading.RLock()
        self._last_sync = 0.0
        self._sizes: dict[int, int] = {}
        for p in self.dir.iterdir():
            m = SEGMENT_RE.match(p.name)
            if m:
                self._sizes[int(m.group(1))] = p.stat().st_size
        self._read_seg, self._read_pos = self._load_ledger()
        # Never append after what a crash may have torn: a restart starts a new segment (invariant 2).
        self._active = max(max(self._sizes, default=0) + 1, self._read_seg)
        self._fd: int | None = None
        # Segments wholly before the ledger were stored; a crash may have left them behind.
        for seg in [s for s in self._sizes if s < self._read_seg]:
            self._remove(seg)

    # --- ledger ------------------------------------------------------------------------------------

    def _load_ledger(self) -> tuple[int, int]:
        try:
            d = json.loads((self.dir / LEDGER).read_text())
            return int(d["segment"]), int(d["offset"])
        except FileNotFoundError:
            return min(self._sizes, default=1), 0
        except (ValueError, KeyError, TypeError) as e:
            # A torn ledger cannot name a position: replay from the oldest segment (duplicates are
            # deduplicated by their tokens; nothing is lost).
            log.error("spill ledger unreadable (%s); replaying %s from its oldest segment", e, self.dir)
            return min(self._sizes, default=1), 0

    def _store_ledger(self) -> None:
        tmp = self.dir / (LEDGER + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"segment": self._read_seg, "offset": self._read_pos}, f)
            if self.fsync != "never":
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / LEDGER)
        if self.fsync == "always":
            _fsync_dir(self.dir)

    # --- appending ---------------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def append(self, table: str, token: str, items: int, payload: Sequence[Buffer]) -> None:
        """Append one batch; returns once it is written (and fsynced per policy).

        Raises:
            SpillFull: the disk budget would be exceeded.
        """
        prefix, size = encode_header(table, token, items, payload)
        if size - HEADER_SIZE > MAX_PAYLOAD:
            raise ValueError("spill batch too large")
        with self._lock:
            if self.used_bytes + size > self.budget_bytes:
                raise SpillFull(f"spill budget of {self.budget_bytes} bytes reached")
            short = self.room(size)
            if short is not None:
                raise SpillFull(short)
            if self._fd is not None and self._sizes.get(self._active, 0) + size > self.segment_max_bytes \
                    and self._sizes.get(self._active, 0) > 0:
                self._rotate()
            if self._fd is None:
                path = self.dir / _seg_name(self._active)
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                self._sizes.setdefault(self._active, 0)
                if self.fsync == "always":
                    _fsync_dir(self.dir)
            parts = [prefix, *payload]
            written = 0
            try:
                while written < size:
                    n = os.writev(self._fd, parts) if written == 0 else os.write(self._fd, b"".join(parts)[written:])
                    written += n
            except OSError:
                self._cut_torn_tail()
                raise
            self._sizes[self._active] += size
            self._sync_after_write()
            self.stats.spilled_batches += 1
            self.stats.spilled_items += items
            self.stats.spilled_bytes += size

    def _cut_torn_tail(self) -> None:
        """A write failed part-way (ENOSPC, EIO): the caller keeps the batch, so the bytes written
        are no record of ours. Cut them off; if that fails too, start a new segment, so nothing is
        ever appended after them (invariant 2) and replay quarantines them as a torn tail."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._sizes[self._active])
        except OSError:
            try:
                self._sizes[self._active] = os.fstat(self._fd).st_size
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
            self._active += 1

    def _sync_after_write(self) -> None:
        if self._fd is None:
            return
        now = time.monotonic()
        if self.fsync == "always" or (self.fsync == "batch" and now - self._last_sync >= BATCH_FSYNC_INTERVAL_S):
            os.fsync(self._fd)
            self._last_sync = now

    def _rotate(self) -> None:
        if self._fd is not None:
            if self.fsync != "never":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        self._active += 1

    def flush(self) -> None:
        with self._lock:
            if self._fd is not None and self.fsync != "never":
                os.fsync(self._fd)
                self._last_sync = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if self.fsync != "never":
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None

    # --- reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Bytes waiting to be replayed (0 = empty)."""
        with self._lock:
            return sum(size for seg, size in self._sizes.items() if seg > self._read_seg) + max(
                0, self._sizes.get(self._read_seg, 0) - self._read_pos
            )

    def peek(self) -> SpilledBatch | None:
        """The oldest batch not yet stored, or None. Corrupt regions are quarantined on the way."""
        with self._lock:
            while True:
                segs = sorted(s for s in self._sizes if s >= self._read_seg)
                if not segs:
                    return None
                if segs[0] != self._read_seg:
                    self._read_seg, self._read_pos = segs[0], 0
                seg = self._read_seg
                size = self._sizes[seg]
                if self._read_pos >= size:
                    if seg == self._active and self._fd is not None:
                        return None  # caught up with the writer
                    self._advance_past(seg)
                    continue
                batch = self._read_at(seg, self._read_pos, size)
                if batch is not None:
                    return batch

    def _read_at(self, seg: int, pos: int, size: int) -> SpilledBatch | None:
        path = self.dir / _seg_name(seg)
        with open(path, "rb") as f:
            f.seek(pos)
            head = f.read(HEADER_SIZE)
            try:
                if len(head) < HEADER_SIZE:
                    raise CorruptRecord("truncated header")
                _m, _v, _fl, tlen, klen, _r, _c, _items, plen = HEADER.unpack(head)
                need = tlen + klen + plen
                if plen > MAX_PAYLOAD or pos + HEADER_SIZE + need > size:
                    raise CorruptRecord("truncated or impossible record")
                rec = decode(memoryview(head + f.read(need)), 0)
            except CorruptRecord as e:
                f.seek(pos)
                rest = f.read(size - pos)
                self._quarantine(seg, pos, rest, str(e))
                nxt = resync(memoryview(rest), 0)
                self._read_pos = size if nxt is None else pos + nxt
                self._store_ledger()
                return None
        return SpilledBatch(rec.table, rec.token, rec.items, rec.payload, seg, pos, pos + rec.size)

    def _quarantine(self, seg: int, pos: int, data: bytes, reason: str) -> None:
        nxt = resync(memoryview(data), 0)
        bad = data if nxt is None else data[:nxt]
        target = self.dir / QUARANTINE / f"{_seg_name(seg)}.at-{pos}.corrupt"
        target.write_bytes(bad)
        self.stats.quarantined_regions += 1
        self.stats.quarantined_bytes += len(bad)
        log.error(
            "spill segment %s: %s at offset %d; %d bytes quarantined to %s, replay continues",
            _seg_name(seg), reason, pos, len(bad), target,
        )

    def ack(self, batch: SpilledBatch) -> None:
        """Record that ``batch`` is stored: the ledger moves past it (invariant 3)."""
        with self._lock:
            if (batch.segment, batch.offset) != (self._read_seg, self._read_pos):
                raise ValueError("spill batches must be acknowledged in order")
            self._read_pos = batch.end
            self.stats.replayed_batches += 1
            self.stats.replayed_items += batch.items
            if self._read_pos >= self._sizes.get(batch.segment, 0) and batch.segment != self._active:
                self._advance_past(batch.segment)
            else:
                self._store_ledger()

    def _advance_past(self, seg: int) -> None:
        later = sorted(s for s in self._sizes if s > seg)
        self._read_seg, self._read_pos = (later[0] if later else self._active), 0
        self._store_ledger()
        self._remove(seg)

    def _remove(self, seg: int) -> None:
        if seg == self._active and self._fd is not None:
            return
        try:
            os.unlink(self.dir / _seg_name(seg))
        except FileNotFoundError:
            pass
        self._sizes.pop(seg, None)
