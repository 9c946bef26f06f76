"""Every Prometheus metric the daemon exports, in one place.

The Grafana dashboards, the alert rules and ``otelingest status`` name only metrics listed here,
and their tests check it (and that it matches the metrics the code registers). The families come
from the pipeline metrics defined in ``otelingest.selfmon.instruments`` (receivers, writers) and
``otelingest.query`` (query service), and the supervisor's own gauges (``otelingest.selfmon.tablestats``: ClickHouse table statistics, readiness, limits,
spill). A metric added to either must be added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Family:
    name: str  # the family name as exposed (counters end in _total)
    kind: Kind
    labels: tuple[str, ...]
    help: str

    def sample_names(self) -> tuple[str, ...]:
        """Names a PromQL query may use for this family."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


# --- pipeline (otelingest.selfmon.instruments, every worker process; otelingest.query.store/cache) -----------
PIPELINE: tuple[Family, ...] = (
    Family("otel_received_spans_total", "counter", ("transport", "tenant"), "Spans accepted"),
    Family("otel_received_logs_total", "counter", ("transport", "tenant"), "Log records accepted"),
    Family("otel_received_metric_points_total", "counter", ("transport", "tenant"), "Metric data points accepted"),
    Family("otel_storage_writes_total", "counter", ("table", "status"), "INSERT batches by outcome"),
    Family("otel_storage_write_duration_seconds", "histogram", ("table",), "Duration of one INSERT"),
    Family("otel_batch_size", "histogram", ("table",), "Items per INSERT batch"),
    Family("otel_memory_usage_bytes", "gauge", ("process", "kind"), "Memory held by the pipeline"),
    Family("otel_queue_size", "gauge", (), "Bytes waiting in the rings"),
    Family("otel_refused_total", "counter", ("reason", "tenant"), "Requests refused"),
    Family("otel_refused_items_total", "counter", ("signal", "reason", "tenant"), "Items refused per tenant"),
    Family("otel_rejected_items_total", "counter", ("signal",), "Items the decoder rejected as invalid"),
    Family("otel_spilled_items_total", "counter", ("table",), "Items written to the disk spill queue"),
    Family("otel_spilled_bytes_total", "counter", ("table",), "Batch bytes written to the disk spill queue"),
    Family("otel_spill_replayed_items_total", "counter", ("table",), "Spilled items replayed into ClickHouse"),
    Family("otel_spill_quarantined_total", "counter", (), "Corrupt spill regions quarantined"),
    Family("otel_worker_restarts_total", "counter", ("role", "reason"), "Worker processes replaced by the supervisor"),
    Family("otel_query_duration_seconds", "histogram", ("query_type",), "Query API request duration"),
    Family("otel_query_errors_total", "counter", ("query_type",), "Query API errors"),
    Family("otel_query_cache_hits_total", "counter", (), "Query cache hits"),
    Family("otel_query_cache_misses_total", "counter", (), "Query cache misses"),
)

# --- supervisor (otelingest.selfmon.tablestats) -------------------------------------------------------------
CLICKHOUSE_UP = "otel_clickhouse_up"
CLICKHOUSE_STATS_TIMESTAMP = "otel_clickhouse_stats_timestamp_seconds"
TABLE_ROWS = "otel_clickhouse_table_rows"
TABLE_BYTES_ON_DISK = "otel_clickhouse_table_bytes_on_disk"
TABLE_COMPRESSED_BYTES = "otel_clickhouse_table_compressed_bytes"
TABLE_UNCOMPRESSED_BYTES = "otel_clickhouse_table_uncompressed_bytes"
TABLE_PARTS = "otel_clickhouse_table_parts"
TABLE_MAX_PARTITION_PARTS = "otel_clickhouse_table_max_partition_parts"
MERGES_RUNNING = "otel_clickhouse_merges_running"
MERGES_BYTES = "otel_clickhouse_merges_bytes"
READY = "otel_ready"
MEMORY_LIMIT_BYTES = "otel_memory_limit_bytes"
SPILL_BYTES = "otel_spill_bytes"
SPILL_BUDGET_BYTES = "otel_spill_budget_bytes"
# otelingest.daemon.diskfloor and otelingest.parthealth
DISK_LOW = "otel_disk_low"
DISK_FREE_BYTES = "otel_disk_free_bytes"
DISK_FLOOR_BYTES = "otel_disk_floor_bytes"
CLICKHOUSE_RESERVED_BYTES = "otel_clickhouse_reserved_bytes"
DETACHED_PARTS = "otel_clickhouse_detached_parts"
DETACHED_ROWS = "otel_clickhouse_detached_rows"
DATA_ERRORS = "otel_clickhouse_data_errors"
# The tenant label of the tenants beyond tenancy.max_metric_tenants: not a valid tenant id (no '<'),
# so it never mixes with a real tenant's series.
OTHER_TENANT = "<other>"
# Tenancy on: per tenant, bounded by tenancy.max_metric_tenants (otelingest.selfmon.tablestats).
TENANT_STORED_BYTES = "otel_tenant_stored_bytes"
TENANT_STORED_ROWS = "otel_tenant_stored_rows"

SUPERVISOR: tuple[Family, ...] = (
    Family(CLICKHOUSE_UP, "gauge", (), "1 when the last ClickHouse statistics query succeeded"),
    Family(CLICKHOUSE_STATS_TIMESTAMP, "gauge", (), "Unix time of the last successful statistics query"),
    Family(TABLE_ROWS, "gauge", ("table",), "Rows in the active parts of a table"),
    Family(TABLE_BYTES_ON_DISK, "gauge", ("table",), "Bytes on disk of a table's active parts"),
    Family(TABLE_COMPRESSED_BYTES, "gauge", ("table",), "Compressed column data bytes of a table"),
    Family(TABLE_UNCOMPRESSED_BYTES, "gauge", ("table",), "Uncompressed column data bytes of a table"),
    Family(TABLE_PARTS, "gauge", ("table",), "Active parts of a table"),
    Family(TABLE_MAX_PARTITION_PARTS, "gauge", ("table",), "Most active parts in one partition of a table"),
    Family(MERGES_RUNNING, "gauge", ("table",), "Merges running on a table"),
    Family(MERGES_BYTES, "gauge", ("table",), "Compressed bytes being merged on a table"),
    Family(READY, "gauge", (), "1 when ClickHouse answers and the schema is current (as /ready)"),
    Family(MEMORY_LIMIT_BYTES, "gauge", ("limit",), "Configured memory limits (limit: soft, hard)"),
    Family(SPILL_BYTES, "gauge", (), "Bytes in the spill directory"),
    Family(SPILL_BUDGET_BYTES, "gauge", (), "Configured spill disk budget"),
    Family(DISK_LOW, "gauge", (), "1 while receivers refuse because ClickHouse's disk is under clickhouse.min_free_disk_mib"),
    Family(DISK_FREE_BYTES, "gauge", ("disk",), "Free bytes (disk: clickhouse = unreserved on its disks, spill = the spill's filesystem)"),
    Family(DISK_FLOOR_BYTES, "gauge", ("disk",), "Configured free-space floors (clickhouse.min_free_disk_mib, spill.min_free_disk_mib)"),
    Family(CLICKHOUSE_RESERVED_BYTES, "gauge", (), "Bytes ClickHouse has reserved for inserts and merges in flight"),
    Family(DETACHED_PARTS, "gauge", ("table", "reason"), "Detached (broken or set aside) parts of the daemon's tables"),
    Family(DETACHED_ROWS, "gauge", ("table",), "Rows in detached parts (read from their count.txt; embedded only)"),
    Family(DATA_ERRORS, "gauge", ("code",), "ClickHouse data-corruption errors since its start (system.errors)"),
    Family(TENANT_STORED_BYTES, "gauge", ("tenant", "signal"),
           "Estimated bytes on disk per tenant and signal, every table of the signal (tenancy on; each part's bytes "
           "shared out by its rows per tenant)"),
    Family(TENANT_STORED_ROWS, "gauge", ("tenant", "signal"),
           "Stored spans, log records, metric points and samples per tenant (tenancy on)"),
)

FAMILIES: tuple[Family, ...] = PIPELINE + SUPERVISOR
BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}


def exported_sample_names() -> frozenset[str]:
    """Every metric name a PromQL expression over the daemon's /metrics may use."""
    return frozenset(n for f in FAMILIES for n in f.sample_names())
