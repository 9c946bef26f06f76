"""The spill replayer: stores what the writer spilled to disk, oldest first, once ClickHouse answers.

One thread per writer, one INSERT at a time, so replay never takes more than one insert slot from
live traffic. For each batch: ``peek`` -> INSERT with the recorded per-table deduplication token
(same settings as a live insert; retryable failures back off and retry, a non-retryable one goes to
the dead-letter directory) -> ``ack``. A crash between the INSERT and the ``ack`` re-inserts the
batch with the same token after the restart, which ClickHouse deduplicates (see
:mod:`otelingest.writer.service` for the whole argument).
"""

from __future__ import annotations

import logging
import threading

from ..spill import SpillQueue
from .inserter import Inserter, Stopped

log = logging.getLogger("otelingest.writer")

IDLE_WAIT_S = 0.2


class SpillReplayer(threading.Thread):
    def __init__(self, spill: SpillQueue, inserter: Inserter) -> None:
        super().__init__(name="spill-replay", daemon=True)
        self.spill = spill
        self.inserter = inserter
        self.stop = inserter.stop  # the writer's stop: an INSERT in progress gives up too
        self.replayed_batches = 0
        self.replayed_items = 0
        from .. import metrics

        self.metrics = metrics

    def run(self) -> None:
        run_batches = run_items = 0  # since the spill was last empty, for the "finished" log line
        while not self.stop.is_set():
            quarantined = self.spill.stats.quarantined_regions
            batch = self.spill.peek()
            if self.spill.stats.quarantined_regions > quarantined:
                self.metrics.spill_quarantined.inc(self.spill.stats.quarantined_regions - quarantined)
            if batch is None:
                if run_batches:
                    log.info("spill replay finished: %d batches, %d items stored from %s",
                             run_batches, run_items, self.spill.dir)
                    run_batches = run_items = 0
                self.stop.wait(IDLE_WAIT_S)
                continue
            if run_batches == 0:
                log.info("replaying spilled batches from %s (%d bytes)", self.spill.dir, len(self.spill))
            try:
                self.inserter.insert_with_token(batch.table, batch.items, batch.payload, batch.token, may_spill=False)
            except Stopped:
                return  # not acknowledged: replayed again by the next writer at this index
            self.spill.ack(batch)
            self.metrics.spill_replayed_items.labels(batch.table).inc(batch.items)
            self.replayed_batches += 1
            self.replayed_items += batch.items
            run_batches += 1
            run_items += batch.items
