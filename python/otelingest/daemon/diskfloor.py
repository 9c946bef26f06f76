"""Free-space floors: no part of the daemon takes a disk ClickHouse writes to down to ENOSPC.

Why: with the default layout the embedded ClickHouse, the rings and the spill share the data
directory's filesystem. ClickHouse *reserves* space for an INSERT or a merge and then writes the
part; if the spill takes those bytes in between, ClickHouse meets ENOSPC in the middle of a part and
leaves it broken (``Empty marks file``, ``columns format version``), and the table stops answering.
Three floors keep everyone apart:

- ClickHouse: the embedded server keeps ``clickhouse.min_free_disk_mib / 2`` free on its disk
  (``keep_free_space_bytes``), so its own inserts and merges fail cleanly with NOT_ENOUGH_SPACE
  (retried by the writers) before the filesystem is full.
- The daemon: when the unreserved free space of ClickHouse's disks (``system.disks``, net of its
  own reserve and of the reservations in flight) falls below ``clickhouse.min_free_disk_mib``, the
  supervisor raises the ``disk_low`` flag: receivers refuse with 503 / UNAVAILABLE + Retry-After,
  ``/ready`` is 503 with the reason. What the rings already hold still fits in the margin.
- The spill: an append is refused (:class:`SpillRoom` -> ``SpillFull``, the INSERT is retried)
  when it would leave less than ``spill.min_free_disk_mib`` free on its filesystem, counting
  ClickHouse's reserved bytes as taken when ClickHouse's disk is that filesystem.

Everything resumes by itself when space comes back: the flag drops at the next check (every second)
that finds a quarter more than the floor free.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import MIB, Config
from ..clickhouse.sqlfiles import query

log = logging.getLogger("otelingest.disk")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def same_filesystem(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def embedded_data_dir(cfg: Config) -> Path:
    """Where the embedded server keeps its parts (see otelingest.clickhouse.embedded)."""
    return cfg.data_path / "clickhouse" / "data"


class SpillRoom:
    """The spill queue's floor check: ``check(size)`` returns None or why the append must wait.

    ``reserved`` reads ClickHouse's reserved bytes (published by the supervisor on the status
    page); they count as taken only when ClickHouse's disk is the spill's filesystem.
    """

    def __init__(self, cfg: Config, spill_dir: Path, reserved: Callable[[], int] = lambda: 0) -> None:
        self.dir = spill_dir
        self.floor = cfg.spill.min_free_disk_mib * MIB
        ch = embedded_data_dir(cfg)
        self.shares_clickhouse = cfg.clickhouse.embedded and (not ch.exists() or same_filesystem(spill_dir, ch))
        self.reserved = reserved

    def check(self, size: int) -> str | None:
        if not self.floor:
            return None
        free = free_bytes(self.dir)
        taken = self.reserved() if self.shares_clickhouse else 0
        if free - taken - size < self.floor:
            return (f"spill floor: {free // MIB} MiB free on {self.dir}"
                    + (f", {taken // MIB} MiB reserved by ClickHouse" if taken else "")
                    + f", spill.min_free_disk_mib = {self.floor // MIB}")
        return None


@dataclass
class DiskReading:
    low: bool = False
    reason: str = ""
    # Smallest unreserved free space over ClickHouse's disks (None: not known right now).
    unreserved: int | None = None
    # Bytes ClickHouse has reserved for inserts and merges in flight (on its default disk).
    reserved: int = 0
    source: str = ""


def clickhouse_disks(client: Any) -> list[dict[str, Any]]:
    res = client.query(query("ops/disks"))
    return [dict(zip(res.column_names, row)) for row in res.result_rows]


class DiskWatch:
    """The supervisor's check, run by the storage watcher every second."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.floor = cfg.clickhouse.min_free_disk_mib * MIB
        self.keep_free = (cfg.clickhouse.min_free_disk_mib // 2) * MIB if cfg.clickhouse.embedded else 0
        self.last = DiskReading()
        from ..selfmon import catalog as names
        from ..clickhouse.client import LazyClient
        from ..selfmon.gauges import gauge

        self.g_low = gauge(names.DISK_LOW)
        self.g_free = gauge(names.DISK_FREE_BYTES)
        self.g_floor = gauge(names.DISK_FLOOR_BYTES)
        self.g_reserved = gauge(names.CLICKHOUSE_RESERVED_BYTES)
        self.g_floor.labels(disk="clickhouse").set(self.floor)
        self.g_floor.labels(disk="spill").set(cfg.spill.min_free_disk_mib * MIB)
        self.g_low.set(0)
        self._client = LazyClient(cfg.clickhouse)

    def _from_clickhouse(self) -> DiskReading | None:
        try:
            disks = clickhouse_disks(self._client.get())
        except Exception:  # noqa: BLE001 - unreachable: the caller falls back or keeps the last
            self.close()
            return None
        if not disks:
            return None
        low = min(disks, key=lambda d: int(d["unreserved_space"]))
        default = next((d for d in disks if d["name"] == "default"), low)
        reserved = max(0, int(default["free_space"]) - int(default["unreserved_space"]))
        return DiskReading(unreserved=int(low["unreserved_space"]), reserved=reserved,
                           source=f"ClickHouse disk {low['name']!r} ({low['path']})")

    def check(self, reachable: bool) -> DiskReading:
        r = self._from_clickhouse() if reachable else None
        if r is None and self.cfg.clickhouse.embedded:
            # ClickHouse down or restarting: its disk is ours to measure (no reservations in flight).
            path = embedded_data_dir(self.cfg)
            try:
                r = DiskReading(unreserved=max(0, free_bytes(path) - self.keep_free), source=f"filesystem of {path}")
            except OSError:
                r = None
        if r is None:
            r = DiskReading(unreserved=self.last.unreserved, reserved=self.last.reserved, source=self.last.source)
        # Hysteresis: once low, space must come back a quarter above the floor, or merges finishing
        # (their reservations released) would flap the refusal on and off around the floor.
        limit = self.floor + (self.floor // 4 if self.last.low else 0)
        if self.floor and r.unreserved is not None and r.unreserved < limit:
            r.low = True
            r.reason = (f"disk space low: {r.unreserved // MIB} MiB unreserved on {r.source}, under "
                        f"clickhouse.min_free_disk_mib = {self.floor // MIB}; refusing new data until space is freed")
        if r.low != self.last.low:
            if r.low:
                log.error("%s", r.reason)
            else:
                log.warning("disk space back: %s MiB unreserved on %s; accepting data again",
                            (r.unreserved or 0) // MIB, r.source)
        self.last = r
        self.g_low.set(1 if r.low else 0)
        if r.unreserved is not None:
            self.g_free.labels(disk="clickhouse").set(r.unreserved)
        self.g_reserved.set(r.reserved)
        spill_dir = self.cfg.data_path / "spill"
        try:
            self.g_free.labels(disk="spill").set(free_bytes(spill_dir if spill_dir.exists() else self.cfg.data_path))
        except OSError:
            pass
        return r

    def close(self) -> None:
        self._client.close()
