"""How many items a writer puts in a batch: as many as ClickHouse can insert at once, no more.

Larger INSERTs mean fewer parts for ClickHouse to merge (each batch makes one part in every table
and view target it reaches), but a sealed batch cannot be split: its deduplication token names
exactly those rows. A batch too large for a memory-capped server is retried forever. So the size is
chosen before sealing, never after:

- from the configured memory of the embedded server (``clickhouse.embedded_max_memory_mib``):
  ``ITEMS_PER_MIB`` items per MiB of the cap, measured with the exhaustion scenario (200 MiB
  inserted 10,000-item batches and stalled on 50,000);
- and learned: each ``MEMORY_LIMIT_EXCEEDED`` halves the size of the batches sealed after it, down
  to ``MIN_ITEMS``. The batch that failed is retried as it is (its memory is freed by merges ending).
"""

from __future__ import annotations

import logging
import threading

from ...config import Config

log = logging.getLogger("otelingest.writer")

MEMORY_LIMIT_EXCEEDED = 241
ITEMS_PER_MIB = 50
MIN_ITEMS = 5_000


def initial_max_items(cfg: Config) -> int:
    items = cfg.writer.batch_max_items
    if cfg.clickhouse.embedded and cfg.clickhouse.embedded_max_memory_mib:
        items = min(items, max(MIN_ITEMS, cfg.clickhouse.embedded_max_memory_mib * ITEMS_PER_MIB))
    return items


class BatchSizer:
    """The items per batch for the next seal; lowered by the insert threads, read by the writer loop."""

    def __init__(self, cfg: Config) -> None:
        self.max_items = initial_max_items(cfg)
        self._floor = min(MIN_ITEMS, cfg.writer.batch_max_items)
        self._lock = threading.Lock()

    def failed(self, code: int | None, rows: int) -> None:
        """An INSERT of ``rows`` failed with ClickHouse error ``code``."""
        if code != MEMORY_LIMIT_EXCEEDED:
            return
        with self._lock:
            # Half the size that failed: a batch retried, or several tables of one batch failing,
            # lower it once, not once per failure.
            target = max(self._floor, rows // 2)
            if target >= self.max_items:
                return
            log.warning("ClickHouse ran out of memory inserting %d rows; batches sealed from now on hold at most %d "
                        "items", rows, target)
            self.max_items = target
