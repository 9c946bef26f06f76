"""Memory limiter (after the OTel Collector's memorylimiter processor), run by the supervisor.

A ticker reads the memory held by the pipeline and sets two flags on the shared status page, so
the hot-path checks are one byte load:

- ``refuse`` (receivers answer 429 / RESOURCE_EXHAUSTED): data held (bytes in the rings plus the
  writers' batches in flight) reaches the soft limit, or the workers' private RSS reaches
  ``memory.rss_limit_mib`` (default: the hard limit; RSS includes each interpreter's baseline);
- ``pause_writers`` (writers stop taking from the rings): data held reaches the hard limit. A writer
  holding nothing still takes one batch, so the pipeline always drains (no deadlock).

Nothing is dropped: refusals are counted (``otel_refused_total``) and retried by clients.
The reader is a plain callable returning (data bytes, rss bytes), swappable in tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from ..config import MIB, MemoryConfig

log = logging.getLogger("otelingest.memory")

Reader = Callable[[], tuple[int, int]]


@dataclass
class Decision:
    refuse: bool
    pause_writers: bool
    data_bytes: int
    rss_bytes: int


class MemoryLimiter:
    def __init__(self, cfg: MemoryConfig, reader: Reader) -> None:
        self.soft = cfg.effective_soft_limit_mib * MIB
        self.hard = cfg.hard_limit_mib * MIB
        self.rss_limit = (cfg.rss_limit_mib or cfg.hard_limit_mib) * MIB
        self.reader = reader
        self.last = Decision(False, False, 0, 0)

    def tick(self) -> Decision:
        data, rss = self.reader()
        d = Decision(refuse=data >= self.soft or rss >= self.rss_limit, pause_writers=data >= self.hard,
                     data_bytes=data, rss_bytes=rss)
        if d.refuse != self.last.refuse:
            log.warning("memory limiter: %s (data %d MiB, workers RSS %d MiB, soft %d MiB, hard %d MiB)",
                        "refusing new data" if d.refuse else "accepting again",
                        data // MIB, rss // MIB, self.soft // MIB, self.hard // MIB)
        self.last = d
        return d


def private_rss(pids: Iterable[int]) -> int:
    """Sum of resident, non-shared memory of the given processes (the rings are shared mappings)."""
    import psutil  # type: ignore[import-untyped]

    total = 0
    for pid in pids:
        try:
            mi = psutil.Process(pid).memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += max(0, mi.rss - getattr(mi, "shared", 0))
    return total
