"""The spill replayer: stores what the writer spilled to disk, oldest first, once ClickHouse answers.

One thread per writer, one INSERT at a time, so replay never takes more than one insert slot from
live traffic. For each batch: ``peek`` -> INSERT with the recorded per-table deduplication token
(same settings as a live insert; retryable failures back off and retry, a non-retryable one goes to
the dead-letter directory) -> ``ack``. A crash between the INSERT and the ``ack`` re-inserts the
batch with the same token after the restart, which ClickHouse deduplicates (see
:mod:`otelingest.ingest.writer.service` for the whole argument).
"""

from __future__ import annotations

import logging
import threading

from ..spill import SpillQueue
from .inserter import Inserter, Stopped

log = logging.getLogger("otelingest.writer")

IDLE_WAIT_S = 0.2
ERROR_WAIT_S = 5.0


class SpillReplayer(threading.Thread):
    def __init__(self, spill: SpillQueue, inserter: Inserter) -> None:
        super().__init__(name=f"spill-replay-{spill.dir.name}", daemon=True)
        self.spill = spill
        self.inserter = inserter
        self.stop = inserter.stop  # the writer's stop: an INSERT in progress gives up too
        self.replayed_batches = 0
        self.replayed_items = 0
        from ...selfmon import instruments

        self.metrics = instruments

    def run(self) -> None:
        self._run_batches = self._run_items = 0  # since the spill was last empty, for the log lines
        while not self.stop.is_set():
            try:
                if not self._step():
                    self.stop.wait(IDLE_WAIT_S)
            except Stopped:
                return  # not acknowledged: replayed again by the next writer at this index
            except Exception:  # noqa: BLE001 - e.g. a disk error: keep the thread, retry later
                log.exception("spill replay from %s failed; retrying", self.spill.dir)
                self.stop.wait(ERROR_WAIT_S)

    def _step(self) -> bool:
        """Replay one batch; False when the queue is empty."""
        quarantined = self.spill.stats.quarantined_regions
        batch = self.spill.peek()
        if self.spill.stats.quarantined_regions > quarantined:
            self.metrics.spill_quarantined.inc(self.spill.stats.quarantined_regions - quarantined)
        if batch is None:
            if self._run_batches:
                log.info("spill replay finished: %d batches, %d items stored from %s",
                         self._run_batches, self._run_items, self.spill.dir)
                self._run_batches = self._run_items = 0
            return False
        if self._run_batches == 0:
            log.info("replaying spilled batches from %s (%d bytes)", self.spill.dir, len(self.spill))
        self.inserter.insert_with_token(batch.table, batch.items, batch.payload, batch.token, may_spill=False)
        self.spill.ack(batch)
        self.metrics.spill_replayed_items.labels(batch.table).inc(batch.items)
        self.replayed_batches += 1
        self.replayed_items += batch.items
        self._run_batches += 1
        self._run_items += batch.items
        return True
