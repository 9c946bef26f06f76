"""Self-instrumentation: the daemon's Prometheus metrics.

Every process of ``otelingest serve`` records into prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, set by the CLI before anything imports prometheus_client); the
supervisor's health server aggregates them on ``/metrics``. Gauges use ``livesum``/``liveall`` so a
dead worker's values disappear once the supervisor calls :func:`mark_process_dead`.

Import this module only after the environment is set (workers inherit it from the supervisor).
"""

from __future__ import annotations

import os
import threading
from typing import Iterable

from prometheus_client import Counter, Gauge, Histogram

from . import catalog
from .endpoint import MULTIPROC_ENV

# Items per batch: from a few spans to the 10,000 default flush size and beyond.
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000)
WRITE_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

received_spans = Counter("otel_received_spans", "Spans accepted into the rings", ["transport", "tenant"])
received_logs = Counter("otel_received_logs", "Log records accepted into the rings", ["transport", "tenant"])
received_metric_points = Counter(
    "otel_received_metric_points", "Metric data points accepted into the rings", ["transport", "tenant"]
)
storage_writes = Counter(
    "otel_storage_writes",
    "INSERT batches by outcome: ok, retry (a retryable failure), spilled (to the disk queue), dead_letter"
    " (moved aside, never dropped silently)",
    ["table", "status"],
)
storage_write_duration = Histogram(
    "otel_storage_write_duration_seconds", "Duration of one successful INSERT", ["table"],
    buckets=WRITE_DURATION_BUCKETS,
)
batch_size = Histogram("otel_batch_size", "Items per INSERT batch", ["table"], buckets=BATCH_SIZE_BUCKETS)
memory_usage = Gauge(
    "otel_memory_usage_bytes",
    "Memory held by the pipeline: process=rings|batches kind=data (bytes the limiter counts), "
    "process=receiver|writer|query kind=rss (private resident memory)", ["process", "kind"],
    multiprocess_mode="livesum",
)
queue_size = Gauge("otel_queue_size", "Bytes waiting in the rings", multiprocess_mode="livesum")
refused = Counter(
    "otel_refused", "Requests refused (reason: memory, disk, ring_full, too_large, bad_request, unsupported, timeout, "
    "unauthenticated, tenant_rate, concurrency; series_limit: some of its series refused); tenant empty before "
    "the request's tenant is known",
    ["reason", "tenant"],
)
refused_items = Counter(
    "otel_refused_items", "Items refused per tenant (reason: tenant_rate = the items of a request over the tenant's "
    "rate, series_limit = data points of new series over max_series_per_metric)",
    ["signal", "reason", "tenant"],
)
rejected_items = Counter(
    "otel_rejected_items", "Items the decoder rejected as invalid (reported to clients as partial_success)",
    ["signal"],
)
spilled_items = Counter("otel_spilled_items", "Items written to the disk spill queue (ClickHouse unavailable)", ["table"])
spilled_bytes = Counter("otel_spilled_bytes", "Batch bytes written to the disk spill queue", ["table"])
spill_replayed_items = Counter(
    "otel_spill_replayed_items", "Spilled items stored in ClickHouse (or dead-lettered) by the replayer", ["table"]
)
spill_quarantined = Counter("otel_spill_quarantined", "Corrupt or torn spill regions moved to quarantine/")
worker_restarts = Counter("otel_worker_restarts", "Worker processes replaced by the supervisor", ["role", "reason"])

RECEIVED = {"traces": received_spans, "logs": received_logs, "metrics": received_metric_points}

OTHER_TENANT = catalog.OTHER_TENANT


class TenantLabels:
    """The ``tenant`` label value of a tenant in this process: its id for the tenants configured in
    [tenancy.tenants] and then the first others seen, up to ``max_tenants`` in all; beyond it
    ``OTHER_TENANT``. First come rather than by volume: a counter's label cannot move once counted.
    Each process picks its own, so /metrics (all workers summed) shows at most workers x
    ``max_tenants`` tenant values per family. Thread-safe (gRPC threads and the event loop)."""

    def __init__(self, max_tenants: int, configured: Iterable[str] = ()) -> None:
        self.max_tenants = max_tenants
        self._lock = threading.Lock()
        self._named: set[str] = set(list(configured)[:max_tenants])

    def __call__(self, tenant: str) -> str:
        if tenant in self._named:
            return tenant
        with self._lock:
            if len(self._named) < self.max_tenants:
                self._named.add(tenant)
                return tenant
        return OTHER_TENANT


# Replaced by configure_tenants() in the receiver workers (tenancy.max_metric_tenants).
tenant_label = TenantLabels(100, ["default"])


def configure_tenants(max_tenants: int, configured: Iterable[str] = ()) -> None:
    global tenant_label
    tenant_label = TenantLabels(max_tenants, ["default", *configured])


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges from the aggregate (called by the supervisor on reap)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
