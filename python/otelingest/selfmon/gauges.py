"""The supervisor's gauges, built from the catalog and registered once per process.

The supervisor is their only writer, so prometheus-client's "mostrecent" multiprocess mode shows its
last value. All are registered when this module is first imported, so ``/metrics`` lists them before
their first value (import it only once ``PROMETHEUS_MULTIPROC_DIR`` is set).
"""

from __future__ import annotations

import functools

from prometheus_client import Gauge

from . import catalog as names


@functools.cache
def gauge(name: str) -> Gauge:
    fam = names.BY_NAME[name]
    return Gauge(name, fam.help, list(fam.labels), multiprocess_mode="mostrecent")


for _name in (names.CLICKHOUSE_UP, names.CLICKHOUSE_STATS_TIMESTAMP, names.TABLE_ROWS, names.TABLE_BYTES_ON_DISK,
              names.TABLE_COMPRESSED_BYTES, names.TABLE_UNCOMPRESSED_BYTES, names.TABLE_PARTS,
              names.TABLE_MAX_PARTITION_PARTS, names.MERGES_RUNNING, names.MERGES_BYTES, names.READY,
              names.MEMORY_LIMIT_BYTES, names.SPILL_BYTES, names.SPILL_BUDGET_BYTES,
              names.DISK_LOW, names.DISK_FREE_BYTES, names.DISK_FLOOR_BYTES, names.CLICKHOUSE_RESERVED_BYTES,
              names.DETACHED_PARTS, names.DETACHED_ROWS, names.DATA_ERRORS, names.TENANT_STORED_BYTES,
              names.TENANT_STORED_ROWS):
    gauge(_name)
