"""Supervisor-side gauges: ClickHouse table statistics, readiness, limits and spill usage.

A thread of the supervisor reads ``system.parts`` and ``system.merges`` for the configured database
every :data:`CLICKHOUSE_INTERVAL_S` (``sql/queries/ops/table_stats.sql``,
``ops/merges.sql``) and refreshes the cheap local gauges (readiness, spill directory size)
every :data:`LOCAL_INTERVAL_S`. Values go through prometheus-client's multiprocess files like every
other metric, so ``/metrics`` shows them; names are in :mod:`otelingest.selfmon.catalog`.

In cluster mode ``system.parts`` is this server's share (the ``*_local`` tables of one replica).

With tenancy on, every :data:`TENANT_INTERVAL_S` it also estimates each tenant's storage
(:class:`TenantStorage`: each part's bytes shared out by its rows per tenant, counted once per
part) into ``otel_tenant_stored_bytes{tenant,signal}`` and
``otel_tenant_stored_rows{tenant,signal}``: the ``tenancy.max_metric_tenants`` largest tenants by
bytes by name, the rest summed under ``tenant="<other>"``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable


from . import catalog as names
from .gauges import gauge
from ..config import MIB, Config
from ..errors import StorageError
from ..clickhouse.sqlfiles import query

log = logging.getLogger("otelingest.chstats")

CLICKHOUSE_INTERVAL_S = 30.0
LOCAL_INTERVAL_S = 1.0
# The writers' on-disk queues live here (one ``writer-<i>/`` each, see otelingest.ingest.spill); the
# budget counts their segment files, not the quarantine.
SPILL_DIR_NAME = "spill"
SPILL_SEGMENT_GLOB = "seg-*.spill"
# Per-tenant storage counts the TenantId column of the parts new since the last time.
TENANT_INTERVAL_S = 60.0
# The signal each table's bytes count for; the rows of ITEM_TABLES are the signal's stored items.
SIGNAL_OF_TABLE = {
    "otel_traces": "traces", "otel_trace_times": "traces", "otel_trace_index": "traces",
    "otel_span_stats_1h": "traces", "otel_service_dependencies_1h": "traces", "otel_service_dependency_hours": "traces",
    "otel_logs": "logs",
    "otel_metrics": "metrics", "otel_metrics_5m": "metrics", "otel_metrics_1h": "metrics",
    "otel_metrics_metadata": "metrics", "otel_metrics_exemplars": "metrics", "otel_prom_samples": "metrics",
    "otel_prom_series": "metrics",
}
ITEM_TABLES = frozenset({"otel_traces", "otel_logs", "otel_metrics", "otel_prom_samples"})



clickhouse_up = gauge(names.CLICKHOUSE_UP)
stats_timestamp = gauge(names.CLICKHOUSE_STATS_TIMESTAMP)
table_rows = gauge(names.TABLE_ROWS)
table_bytes_on_disk = gauge(names.TABLE_BYTES_ON_DISK)
table_compressed = gauge(names.TABLE_COMPRESSED_BYTES)
table_uncompressed = gauge(names.TABLE_UNCOMPRESSED_BYTES)
table_parts = gauge(names.TABLE_PARTS)
table_max_partition_parts = gauge(names.TABLE_MAX_PARTITION_PARTS)
merges_running = gauge(names.MERGES_RUNNING)
merges_bytes = gauge(names.MERGES_BYTES)
ready = gauge(names.READY)
memory_limit = gauge(names.MEMORY_LIMIT_BYTES)
spill_bytes = gauge(names.SPILL_BYTES)
spill_budget = gauge(names.SPILL_BUDGET_BYTES)
tenant_stored_bytes = gauge(names.TENANT_STORED_BYTES)
tenant_stored_rows = gauge(names.TENANT_STORED_ROWS)

# tenant -> signal -> (rows, bytes on disk)
TenantStats = dict[str, dict[str, tuple[int, int]]]


def table_stats(client: Any, database: str) -> list[dict[str, Any]]:
    """One dict per MergeTree table: table, rows, bytes_on_disk, compressed_bytes, ...; sorted by name."""
    res = client.query(query("ops/table_stats"), parameters={"database": database})
    return [dict(zip(res.column_names, (int(v) if isinstance(v, int) else v for v in row))) for row in res.result_rows]


def merges(client: Any, database: str) -> dict[str, tuple[int, int]]:
    """Running merges per table: (count, compressed bytes being merged)."""
    res = client.query(query("ops/merges"), parameters={"database": database})
    return {str(t): (int(n), int(b)) for t, n, b in res.result_rows}


class TenantStorage:
    """Each tenant's stored rows (ITEM_TABLES) and estimated bytes on disk (every table) by signal.

    system.parts has bytes per part, not per tenant: each part's bytes are shared out by its rows
    per tenant. Those are counted exactly (``ops/tenant_part_rows.sql``, the TenantId column only)
    once per part and kept while the part is active (parts are immutable), so a collection reads
    only the parts written or merged since the last one."""

    def __init__(self) -> None:
        # table -> part -> tenant -> rows
        self.parts: dict[str, dict[str, dict[str, int]]] = {}

    def collect(self, client: Any, database: str, cluster: str | None = None) -> TenantStats:
        local = {(f"{t}_local" if cluster else t): t for t in SIGNAL_OF_TABLE}
        res = client.query(query("ops/tenant_parts"), parameters={"database": database, "tables": list(local)})
        active: dict[str, dict[str, tuple[int, int]]] = {}
        for table, part, rows, nbytes in res.result_rows:
            active.setdefault(local[str(table)], {})[str(part)] = (int(rows), int(nbytes))
        out: dict[str, dict[str, list[int]]] = {}
        for table, signal in SIGNAL_OF_TABLE.items():
            parts = active.get(table, {})
            known = {p: c for p, c in self.parts.get(table, {}).items() if p in parts}
            new = [p for p in parts if p not in known]
            if new:
                name = f"{table}_local" if cluster else table
                res = client.query(query("ops/tenant_part_rows"),
                                   parameters={"database": database, "table": name, "parts": new})
                for part, tenant, rows in res.result_rows:
                    known.setdefault(str(part), {})[str(tenant)] = int(rows)
            self.parts[table] = known  # a part merged away meanwhile is counted as its successor next time
            for part, counts in known.items():
                part_rows, part_bytes = parts[part]
                for tenant, rows in counts.items():
                    acc = out.setdefault(tenant, {}).setdefault(signal, [0, 0])
                    acc[0] += rows if table in ITEM_TABLES else 0
                    acc[1] += round(part_bytes * rows / part_rows) if part_rows else 0
        return {t: {s: (v[0], v[1]) for s, v in sig.items()} for t, sig in out.items()}


def tenant_stats(client: Any, database: str, cluster: str | None = None) -> TenantStats:
    """:meth:`TenantStorage.collect` from scratch (every part counted)."""
    return TenantStorage().collect(client, database, cluster)


def bound_tenants(stats: TenantStats, max_tenants: int) -> TenantStats:
    """The ``max_tenants`` tenants with the most bytes as they are, the others summed under
    ``OTHER_TENANT`` (a bounded number of label values)."""
    ranked = sorted(stats, key=lambda t: (-sum(b for _, b in stats[t].values()), t))
    out = {t: stats[t] for t in ranked[:max_tenants]}
    rest: dict[str, tuple[int, int]] = {}
    for t in ranked[max_tenants:]:
        for signal, (rows, nbytes) in stats[t].items():
            r, b = rest.get(signal, (0, 0))
            rest[signal] = (r + rows, b + nbytes)
    if rest:
        out[names.OTHER_TENANT] = rest
    return out


def spill_segment_bytes(path: Path) -> int:
    """Bytes of the spill segment files under ``path`` (0 when it does not exist)."""
    total = 0
    for seg in path.rglob(SPILL_SEGMENT_GLOB):
        try:
            total += seg.lstat().st_size
        except OSError:  # removed while we walk: the replayer finished it
            pass
    return total


class StatsCollector:
    """The supervisor's collector thread. ``readiness`` is the supervisor's (ready, reason) callable."""

    def __init__(
        self,
        cfg: Config,
        readiness: Callable[[], tuple[bool, str]],
        *,
        clickhouse_interval_s: float = CLICKHOUSE_INTERVAL_S,
        local_interval_s: float = LOCAL_INTERVAL_S,
    ) -> None:
        self.cfg = cfg
        self.readiness = readiness
        self.clickhouse_interval_s = clickhouse_interval_s
        self.local_interval_s = local_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chstats", daemon=True)
        self._client: Any = None
        self.tenant_interval_s = TENANT_INTERVAL_S if cfg.tenancy.enabled else 0.0
        # (tenant, signal) label pairs set by the last collection: zeroed when they drop out.
        self._tenant_labels: set[tuple[str, str]] = set()
        self._tenant_storage = TenantStorage()

    def start(self) -> None:
        mem = self.cfg.memory
        memory_limit.labels(limit="hard").set(mem.hard_limit_mib * MIB)
        memory_limit.labels(limit="soft").set(mem.effective_soft_limit_mib * MIB)
        spill_budget.set(self.cfg.spill.disk_budget_mib * MIB)
        clickhouse_up.set(0)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._close()

    def _run(self) -> None:
        next_ch = next_tenants = 0.0
        while not self._stop.is_set():
            self.collect_local()
            now = time.monotonic()
            # The first collection waits for readiness: before that the tables may not exist yet.
            if now >= next_ch and self.readiness()[0]:
                self.collect_clickhouse()
                next_ch = now + self.clickhouse_interval_s
            if self.tenant_interval_s and now >= next_tenants and self.readiness()[0]:
                self.collect_tenants()
                next_tenants = now + self.tenant_interval_s
            self._stop.wait(self.local_interval_s)

    def collect_local(self) -> None:
        ready.set(1 if self.readiness()[0] else 0)
        spill_bytes.set(spill_segment_bytes(self.cfg.data_path / SPILL_DIR_NAME))

    def collect_clickhouse(self) -> bool:
        """One collection; False (and otel_clickhouse_up 0) when ClickHouse did not answer."""
        db = self.cfg.clickhouse.database
        try:
            if self._client is None:
                from ..clickhouse.client import connect

                self._client = connect(self.cfg.clickhouse, read_only=True, with_database=False)
            tables = table_stats(self._client, db)
            running = merges(self._client, db)
        except Exception as e:  # any client failure means "no fresh statistics"
            from ..clickhouse.client import as_storage_error

            err = e if isinstance(e, StorageError) else as_storage_error(e)
            log.warning("ClickHouse statistics unavailable: %s", err)
            clickhouse_up.set(0)
            self._close()
            return False
        for t in tables:
            name = t["table"]
            table_rows.labels(table=name).set(t["rows"])
            table_bytes_on_disk.labels(table=name).set(t["bytes_on_disk"])
            table_compressed.labels(table=name).set(t["compressed_bytes"])
            table_uncompressed.labels(table=name).set(t["uncompressed_bytes"])
            table_parts.labels(table=name).set(t["parts"])
            table_max_partition_parts.labels(table=name).set(t["max_partition_parts"])
            n, b = running.get(name, (0, 0))
            merges_running.labels(table=name).set(n)
            merges_bytes.labels(table=name).set(b)
        clickhouse_up.set(1)
        stats_timestamp.set(time.time())
        return True

    def collect_tenants(self) -> bool:
        """One per-tenant storage collection (tenancy on); False when ClickHouse did not answer."""
        try:
            if self._client is None:
                from ..clickhouse.client import connect

                self._client = connect(self.cfg.clickhouse, read_only=True, with_database=False)
            stats = self._tenant_storage.collect(self._client, self.cfg.clickhouse.database,
                                                 self.cfg.clickhouse.cluster)
        except Exception as e:  # any client failure: keep the last values, try again next time
            log.warning("per-tenant storage statistics unavailable: %s", e)
            self._close()
            return False
        labels: set[tuple[str, str]] = set()
        for tenant, signals in bound_tenants(stats, self.cfg.tenancy.max_metric_tenants).items():
            for signal, (rows, nbytes) in signals.items():
                tenant_stored_rows.labels(tenant=tenant, signal=signal).set(rows)
                tenant_stored_bytes.labels(tenant=tenant, signal=signal).set(nbytes)
                labels.add((tenant, signal))
        for tenant, signal in self._tenant_labels - labels:  # a tenant gone or now counted as other
            tenant_stored_rows.labels(tenant=tenant, signal=signal).set(0)
            tenant_stored_bytes.labels(tenant=tenant, signal=signal).set(0)
        self._tenant_labels = labels
        return True

    def _close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken connection may fail too; nothing to do
                pass
            self._client = None
