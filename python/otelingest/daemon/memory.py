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
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

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


class MemoryTicker:
    """The supervisor's ticker thread: every ``memory.check_interval_s`` it reads the pipeline's
    memory (rings, the workers' open batches from their flag slots, the workers' private RSS), runs
    the limiter, and writes the flags page the workers read: refuse, pause writers, and the storage
    state they act on (ready, disk low, ClickHouse's reserved bytes)."""

    def __init__(self, cfg: MemoryConfig, flags: Any, rings: list[Any], children: Any, storage: Any,
                 stopping: threading.Event) -> None:
        self.flags = flags
        self.rings = rings
        self.children = children
        self.storage = storage
        self.stopping = stopping
        self.interval_s = cfg.check_interval_s
        self.limiter = MemoryLimiter(cfg, self.reading)
        self._breakdown: dict[tuple[str, str], int] = {}
        self._thread = threading.Thread(target=self._run, name="memory-limiter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def reconfigure(self, cfg: MemoryConfig) -> None:
        self.interval_s = cfg.check_interval_s
        self.limiter = MemoryLimiter(cfg, self.reading)

    def reading(self) -> tuple[int, int]:
        """(data bytes, workers' private RSS) for the limiter; the breakdown goes to the gauges."""
        held = self.children.held_bytes()
        ring_bytes = sum(int(r.used_bytes) for r in self.rings)
        rss = {role: private_rss(self.children.pids(role)) for role in ("receiver", "writer", "query")}
        self._breakdown = {("rings", "data"): ring_bytes, ("batches", "data"): held,
                           **{(role, "rss"): v for role, v in rss.items()}}
        return ring_bytes + held, rss["receiver"] + rss["writer"]

    def _run(self) -> None:
        from ..selfmon import instruments
        from .flags import DISK_LOW, PAUSE_WRITERS, REFUSE, SCHEMA_PENDING, STORAGE_READY

        while not self.stopping.is_set():
            try:
                d = self.limiter.tick()
                self.flags.set_flag(REFUSE, d.refuse)
                self.flags.set_flag(PAUSE_WRITERS, d.pause_writers)
                self.flags.usage = d.data_bytes
                for (process, kind), value in self._breakdown.items():
                    instruments.memory_usage.labels(process, kind).set(value)
                instruments.queue_size.set(self._breakdown.get(("rings", "data"), 0))
            except Exception:  # noqa: BLE001 - the ticker must survive a bad reading
                log.exception("memory limiter tick failed")
            self.flags.set_flag(STORAGE_READY, self.storage.readiness()[0])
            self.flags.set_flag(DISK_LOW, bool(self.storage.disk_reason))
            self.flags.set_flag(SCHEMA_PENDING, not self.storage.schema_current)
            # Not INSERT_HOLD: only Supervisor._publish_schema writes it (a stale tick could lower
            # the hold just after a rekey raised it).
            self.flags.clickhouse_reserved = self.storage.clickhouse_reserved
            self.stopping.wait(self.interval_s)
