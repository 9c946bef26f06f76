"""The storage watcher's health checks: the disk floor every second, the parts every half minute.

- :class:`~otelingest.daemon.diskfloor.DiskWatch`: free space against ``clickhouse.min_free_disk_mib``
  (sets the refusal and the /ready reason, see :mod:`otelingest.daemon.diskfloor`).
- :class:`PartHealth`: ``system.detached_parts`` of the daemon's database (a part ClickHouse found
  broken on start is set aside as ``broken-on-start_<part>``: its rows are missing from the table)
  and ``system.errors`` for errors that mean a damaged part was read. Each new finding is logged
  once, naming the table and the part and how many rows (``count.txt``, when the part is on a disk
  this host can read) or bytes are missing; gauges ``otel_clickhouse_detached_parts``,
  ``otel_clickhouse_detached_rows`` and ``otel_clickhouse_data_errors`` carry them to alerts and to
  ``otelingest status``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..selfmon import catalog as names
from ..config import Config
from ..clickhouse.sqlfiles import query

log = logging.getLogger("otelingest.storage")

PART_CHECK_INTERVAL_S = 30.0
# system.errors names that mean a part on disk is damaged (not a bad request).
DATA_ERRORS = (
    "CHECKSUM_DOESNT_MATCH", "CORRUPTED_DATA", "NO_FILE_IN_DATA_PART", "BAD_SIZE_OF_FILE_IN_DATA_PART",
    "POTENTIALLY_BROKEN_DATA_PART", "CANNOT_READ_ALL_DATA", "UNKNOWN_PART_TYPE", "FILE_DOESNT_EXIST",
)


def detached_rows(path: str) -> int | None:
    """Rows of a detached part, from its count.txt (None when this host cannot read it)."""
    try:
        return int((Path(path) / "count.txt").read_text().strip() or "x")
    except (OSError, ValueError):
        return None


class PartHealth:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        from ..clickhouse.client import LazyClient
        from ..selfmon.gauges import gauge

        self._client = LazyClient(cfg.clickhouse)
        self._seen: set[tuple[str, str]] = set()
        self._errors: dict[str, int] = {}
        self._labels: set[tuple[str, str]] = set()
        self.g_parts = gauge(names.DETACHED_PARTS)
        self.g_rows = gauge(names.DETACHED_ROWS)
        self.g_errors = gauge(names.DATA_ERRORS)

    def check(self) -> bool:
        """One check; False when ClickHouse did not answer."""
        try:
            client = self._client.get()
            res = client.query(query("ops/detached_parts"), parameters={"database": self.cfg.clickhouse.database})
            parts = [dict(zip(res.column_names, row)) for row in res.result_rows]
            res = client.query(query("ops/data_errors"), parameters={"names": list(DATA_ERRORS)})
            errors = [dict(zip(res.column_names, row)) for row in res.result_rows]
        except Exception as e:  # noqa: BLE001 - any failure: try again next time
            log.debug("part health check failed: %s", e)
            self.close()
            return False
        self._report_parts(parts)
        self._report_errors(errors)
        return True

    def _report_parts(self, parts: list[dict[str, Any]]) -> None:
        counts: dict[tuple[str, str], int] = {}
        rows: dict[str, int] = {}
        for p in parts:
            table, name, reason = str(p["table"]), str(p["name"]), str(p["reason"]) or "detached"
            counts[(table, reason)] = counts.get((table, reason), 0) + 1
            n = detached_rows(str(p["path"]))
            rows[table] = rows.get(table, 0) + (n or 0)
            if (table, name) not in self._seen:
                self._seen.add((table, name))
                what = f"{n} rows" if n is not None else f"{int(p['bytes_on_disk'])} bytes of data (row count unreadable)"
                log.error("ClickHouse part %s.%s/%s is detached (%s): %s missing from the table until it is "
                          "re-attached (ALTER TABLE ... ATTACH PART) or dropped; files in %s",
                          self.cfg.clickhouse.database, table, name, reason, what, p["path"])
        for key in self._labels - set(counts):
            self.g_parts.labels(*key).set(0)
        for key, n in counts.items():
            self.g_parts.labels(*key).set(n)
        for table in {t for t, _ in self._labels} | set(rows):
            self.g_rows.labels(table).set(rows.get(table, 0))
        self._labels |= set(counts)

    def _report_errors(self, errors: list[dict[str, Any]]) -> None:
        for e in errors:
            name, value = str(e["name"]), int(e["value"])
            self.g_errors.labels(name).set(value)
            if value > self._errors.get(name, 0):
                log.error("ClickHouse reports %d new %s error(s) reading its data (a damaged part?): %s",
                          value - self._errors.get(name, 0), name, str(e["last_error_message"])[:500])
            self._errors[name] = value

    def close(self) -> None:
        self._client.close()


class StorageHealth:
    """Called by the supervisor's storage watcher on every tick; updates its StorageState."""

    def __init__(self, cfg: Config, state: Any, *, part_interval_s: float = PART_CHECK_INTERVAL_S) -> None:
        self.state = state
        from .diskfloor import DiskWatch

        self.disk = DiskWatch(cfg)
        self.parts = PartHealth(cfg)
        self.part_interval_s = part_interval_s
        self._next_parts = 0.0

    def check(self, reachable: bool) -> None:
        try:
            r = self.disk.check(reachable)
            self.state.disk_reason = r.reason if r.low else ""
            self.state.clickhouse_reserved = r.reserved
        except Exception:  # noqa: BLE001 - the watcher must survive a bad reading
            log.exception("disk check failed")
        now = time.monotonic()
        if reachable and self.state.schema_current and now >= self._next_parts:
            self._next_parts = now + self.part_interval_s
            self.parts.check()
