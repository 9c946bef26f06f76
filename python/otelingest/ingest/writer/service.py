"""The writer loop: take records from the rings, batch them, INSERT them, then release the rings.

How each step keeps the delivery spec (package doc; the argument: docs/delivery.md):

1. On seal, the batch's boundaries (for each ring, the end offset of its last record) and a fresh
   random token go into the ledger file (:mod:`.ledger`) BEFORE the first INSERT.
2. Each table's INSERT carries ``insert_deduplication_token = <token>-<table>`` (the tables have a
   ``non_replicated_deduplication_window``; ``deduplicate_blocks_in_dependent_materialized_views=1``
   extends it to the views).
3. Once all tables are stored: ledger entry marked done, rings released, entry removed.
4. A writer starting at the same index reads the ledger first. Entries not done are rebuilt from the
   rings (release cursor up to the recorded end offsets, same order: byte-identical bodies) and
   re-inserted with the recorded token. Entries marked done are skipped past and released.
5. With a spill queue, a table whose INSERT keeps failing for ``spill.after_s`` is appended to the
   queue under the same token and counts as stored for releasing the rings (outcome SPILLED); while
   the queue is not empty, rebuilt batches go to it straight away (``spill_first``), so both copies
   of a batch sit next to each other and the second one is deduplicated.

Flow control: the writer stops reading while ``insert_workers * 2`` batches are in flight or,
once it holds a batch, while the memory limiter's "pause writers" flag is up. A writer holding
nothing always takes the next batch, so a paused pipeline still moves.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ...config import Config
from ..spill import SpillQueue
from .batch import BATCH_MAX_BYTES, OpenBatch, SealedBatch, TableBatch
from .inserter import DEAD_LETTER, SPILLED, Inserter, Stopped
from .ledger import Ledger
from .replayer import SpillReplayer
from .sizing import BatchSizer

log = logging.getLogger("otelingest.writer")

READ_BURST = 512
IDLE_SLEEP_S = 0.005
# Idle turns double the sleep up to this: an idle writer woke 200 times a second and that alone
# cost 2.6% of a core, a third of its CPU at 90,000 spans/s. New records wait at most this long
# more; a finished INSERT wakes the loop at once (its rings are released without delay).
IDLE_SLEEP_MAX_S = 0.04
HEARTBEAT_S = 0.5


class RingReader(Protocol):
    pending_bytes: int

    def read(self) -> tuple[int, bytes] | None: ...
    def release(self, offset: int) -> None: ...
    def rewind(self) -> None: ...


@dataclass
class InFlight:
    batch: SealedBatch
    futures: list[Future] = field(default_factory=list)

    def finished(self) -> bool:
        return all(f.done() for f in self.futures)

    def stored(self) -> bool:
        """Every table stored or dead-lettered (False if any was stopped before storing)."""
        return all(f.done() and f.exception() is None for f in self.futures)


class WriterService:
    def __init__(
        self,
        cfg: Config,
        rings: Sequence[RingReader],
        ledger: Ledger,
        inserter: Inserter,
        *,
        index: int = 0,
        pause: Callable[[], bool] = lambda: False,
        heartbeat: Callable[[int], None] = lambda held: None,
        spill: SpillQueue | None = None,
        orphan_spills: Sequence[SpillQueue] = (),
    ) -> None:
        self.cfg = cfg
        self.rings = list(rings)
        self.ledger = ledger
        self.inserter = inserter
        self.index = index
        self.pause = pause
        self.heartbeat = heartbeat
        self._last_beat = 0.0
        self.pool = ThreadPoolExecutor(cfg.writer.insert_workers, thread_name_prefix="insert")
        # A batch holds its records in the rings until stored: sealed at a quarter of the rings'
        # capacity, the next batches still find room while it is inserted (large batch_max_items).
        ring_bytes = len(self.rings) * (cfg.writer.ring_mib << 20)
        self.sizer = BatchSizer(cfg)
        inserter.sizer = self.sizer
        self.open = OpenBatch(self.sizer.max_items, cfg.writer.batch_timeout_s,
                              max_bytes=min(BATCH_MAX_BYTES, max(1, ring_bytes // 4)))
        self.inflight: deque[InFlight] = deque()
        self._wake = threading.Event()  # set when an INSERT finishes
        self.max_inflight = cfg.writer.insert_workers * 2
        self._peeked: dict[int, tuple[int, bytes] | None] = {}
        self.taken_bytes = 0  # payload bytes taken from the rings, ever (drain accounting)
        self.stats: dict[str, int] = {"batches": 0, "rows": 0, "replayed": 0, "dead_letter": 0, "spilled": 0}
        self.spill = spill
        if spill is not None:
            inserter.spill = spill
        self.replayer = SpillReplayer(spill, inserter) if spill is not None else None
        # Queues of writer indexes that no longer exist (fewer writers than last run): replayed too.
        self.orphans = [SpillReplayer(q, inserter) for q in orphan_spills]

    # --- rings -------------------------------------------------------------------------------------

    def _read(self, ring: int) -> tuple[int, bytes] | None:
        if ring in self._peeked:
            return self._peeked.pop(ring)
        return self.rings[ring].read()

    def _unread(self, ring: int, item: tuple[int, bytes]) -> None:
        self._peeked[ring] = item

    @property
    def held_bytes(self) -> int:
        return self.open.nbytes + sum(f.batch.nbytes for f in self.inflight)

    # --- replay ------------------------------------------------------------------------------------

    def replay(self) -> None:
        """Finish what a previous writer at this index left in the ledger (see the module doc)."""
        for r in self.rings:
            r.rewind()
        for entry in list(self.ledger.batches):
            ends = {int(k): int(v) for k, v in entry["ends"].items()}
            rebuilt = OpenBatch(self.cfg.writer.batch_max_items, self.cfg.writer.batch_timeout_s, max_bytes=1 << 62)
            complete = True
            for ring, end in sorted(ends.items()):
                if ring >= len(self.rings):
                    complete = False
                    continue
                while True:
                    item = self._read(ring)
                    if item is None:
                        break
                    offset, record = item
                    if offset > end:
                        self._unread(ring, item)
                        break
                    if not entry["done"]:
                        rebuilt.add(ring, offset, record)
                    if offset == end:
                        break
                if rebuilt.ends.get(ring) != end and not entry["done"]:
                    complete = False
            if entry["done"]:
                for ring, end in ends.items():
                    if ring < len(self.rings):
                        self.rings[ring].release(end)
                self.ledger.remove(entry["seq"])
                continue
            if not complete or rebuilt.empty:
                # Already released (the writer died between release and removal): nothing to redo.
                log.warning("ledger batch %s no longer in the rings; dropping its entry", entry["seq"])
                self.ledger.remove(entry["seq"])
                continue
            sealed = rebuilt.seal(entry["seq"], entry["token"])
            # A non-empty spill may hold a copy of this batch: queue this one right behind it.
            spill_first = self.spill is not None and len(self.spill) > 0
            log.info("replaying batch %s (%s)", entry["seq"],
                     ", ".join(f"{t.table}: {t.rows} rows" for t in sealed.tables.values()))
            self.stats["replayed"] += 1
            self._submit(sealed, spill_first=spill_first)
        # Entries are already in the ledger; _submit only queues them.

    # --- main loop ---------------------------------------------------------------------------------

    def _seal(self) -> None:
        if self.open.empty:
            return
        seq = self.ledger.take_seq()
        sealed = self.open.seal(seq, f"w{self.index}-{uuid.uuid4().hex}")
        self.open.max_items = self.sizer.max_items  # lowered by a MEMORY_LIMIT_EXCEEDED since the last seal
        self.ledger.add(sealed.ledger_entry())
        log.debug("batch %d sealed: %s", seq, {t.table: t.rows for t in sealed.tables.values()})
        self._submit(sealed)

    def _submit(self, batch: SealedBatch, *, spill_first: bool = False) -> None:
        item = InFlight(batch)
        for t in batch.tables.values():
            item.futures.append(self._insert(t, batch.token, spill_first=spill_first))
        self.inflight.append(item)

    def _insert(self, t: TableBatch, token: str, *, spill_first: bool = False) -> Future[str]:
        """One table's INSERT in the pool; its end wakes the loop (the rings are released at once)."""
        f = self.pool.submit(self.inserter.insert, t.table, t.rows, t.parts, token, spill_first=spill_first)
        f.add_done_callback(lambda _: self._wake.set())
        return f

    def _complete(self) -> None:
        """Release finished batches, oldest first (release cursors only move forward in order)."""
        while self.inflight and self.inflight[0].finished():
            item = self.inflight[0]
            if not item.stored():
                if self._resubmit_failed(item):
                    return
                return  # stopped mid-way: stays in the ledger and the rings for the next writer
            b = item.batch
            for f, t in zip(item.futures, b.tables.values()):
                if f.result() == DEAD_LETTER:
                    self.stats["dead_letter"] += 1
                elif f.result() == SPILLED:
                    self.stats["spilled"] += 1
                else:
                    self.stats["rows"] += t.rows
            self.ledger.mark_done(b.seq)
            for ring, end in b.ends.items():
                self.rings[ring].release(end)
            self.ledger.remove(b.seq)
            self.stats["batches"] += 1
            self.inflight.popleft()

    def _resubmit_failed(self, item: InFlight) -> bool:
        """A table insert that failed with anything but Stopped is a bug: log it, try it again."""
        again = False
        for k, (f, t) in enumerate(zip(item.futures, item.batch.tables.values())):
            exc = f.exception()
            if exc is not None and not isinstance(exc, Stopped) and not self.inserter.stop.is_set():
                log.error("insert of batch %s into %s failed unexpectedly; retrying", item.batch.seq, t.table,
                          exc_info=exc)
                time.sleep(0.5)
                item.futures[k] = self._insert(t, item.batch.token)
                again = True
        return again

    def _fill(self) -> int:
        """Take up to a burst of records from every ring into the open batch; returns records taken."""
        taken = 0
        for ring in range(len(self.rings)):
            for _ in range(READ_BURST):
                if self.open.full():
                    return taken
                item = self._read(ring)
                if item is None:
                    break
                self.open.add(ring, item[0], item[1])
                self.taken_bytes += len(item[1])
                taken += 1
        return taken

    def step(self, *, draining: bool = False, take: bool = True) -> int:
        """One turn of the loop; returns the records taken (0 = idle)."""
        self._complete()
        taken = 0
        can_take = take and len(self.inflight) < self.max_inflight and not (
            self.held_bytes > 0 and self.pause() and not draining)
        if can_take:
            taken = self._fill()
        if self.open.due() or (draining and not self.open.empty and taken == 0) or self.open.full():
            if len(self.inflight) < self.max_inflight or draining:
                self._seal()
        return taken

    def _beat(self) -> None:
        """Heartbeat to the supervisor, at most every HEARTBEAT_S."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self.heartbeat(self.held_bytes)
            self._last_beat = now

    def run(self, stop: threading.Event, drain: threading.Event | None = None) -> None:
        """Run until ``stop``; on ``drain`` take everything left in the rings, store it, then return."""
        self.replay()
        self.start_replayer()
        idle = IDLE_SLEEP_S
        while not stop.is_set():
            self._beat()
            if drain is not None and drain.is_set():
                self.drain(stop)
                return
            if self.step() == 0:
                self._wake.wait(idle)
                self._wake.clear()
                idle = min(idle * 2, IDLE_SLEEP_MAX_S)
            else:
                idle = IDLE_SLEEP_S

    def drain(self, stop: threading.Event) -> None:
        """Store what the rings held when the stop came, and every batch; then return.

        On a full stop the receivers have already stopped, so this empties the rings. On a rolling
        restart producers are still live: the writer takes only the bytes that were waiting at the
        stop (or until a ring read comes back empty), so it never chases new traffic; the rest is
        read by its replacement.
        """
        budget = sum(int(r.pending_bytes) for r in self.rings)
        taking = True
        start = self.taken_bytes
        while not stop.is_set():
            self._beat()
            taken = self.step(draining=True, take=taking)
            if taking and taken == 0 and not self._peeked and all(r.pending_bytes == 0 for r in self.rings):
                taking = False  # the rings are empty
            if taking and self.taken_bytes - start >= budget:
                taking = False  # took what was waiting at the stop; live producers' new data is not ours
            if not taking and self.open.empty and not self.inflight:
                return
            if taken == 0:
                stop.wait(IDLE_SLEEP_S)

    def start_replayer(self) -> None:
        """Start storing what the spill queue holds (after :meth:`replay`, whose copies go first)."""
        for r in [self.replayer, *self.orphans]:
            if r is not None and not r.is_alive() and r.ident is None:
                r.start()

    def close(self) -> None:
        self.inserter.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=False)
        for r in [self.replayer, *self.orphans]:
            if r is not None and r.is_alive():
                r.join()
        self.inserter.close()
        for q in [self.spill, *(r.spill for r in self.orphans)]:
            if q is not None:
                q.close()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stats, inflight=len(self.inflight), held_bytes=self.held_bytes,
                                   batch_max_items=self.sizer.max_items)
        if self.replayer is not None and self.spill is not None:
            out.update(spill_replayed=self.replayer.replayed_items, spill_bytes=len(self.spill))
        return out
