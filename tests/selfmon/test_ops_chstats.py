"""The supervisor's ClickHouse statistics gauges, read from a real ClickHouse."""

from __future__ import annotations

import time

from conftest import free_port
from prometheus_client import REGISTRY

from otelingest.selfmon import catalog as metrics_catalog, tablestats as chstats
from otelingest.config import MIB


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_table_statistics_match_what_was_inserted(migrated, ch_client):
    db = migrated.clickhouse.database
    # Two inserts into one partition, merges stopped: exactly two active parts.
    ch_client.command(f"SYSTEM STOP MERGES {db}.otel_logs")
    hour = "toDateTime64(toStartOfHour(now()), 9)"
    ch_client.command(f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, Body) SELECT {hour}, 'a', toString(number) FROM numbers(3)")
    ch_client.command(f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, Body) SELECT {hour}, 'b', toString(number) FROM numbers(2)")

    collector = chstats.StatsCollector(migrated, lambda: (True, "ok"))
    assert collector.collect_clickhouse() is True
    collector.stop()

    assert value(metrics_catalog.CLICKHOUSE_UP) == 1
    assert value(metrics_catalog.TABLE_ROWS, table="otel_logs") == 5
    assert value(metrics_catalog.TABLE_PARTS, table="otel_logs") == 2
    assert value(metrics_catalog.TABLE_MAX_PARTITION_PARTS, table="otel_logs") == 2
    on_disk = value(metrics_catalog.TABLE_BYTES_ON_DISK, table="otel_logs")
    compressed = value(metrics_catalog.TABLE_COMPRESSED_BYTES, table="otel_logs")
    uncompressed = value(metrics_catalog.TABLE_UNCOMPRESSED_BYTES, table="otel_logs")
    assert on_disk and compressed and uncompressed and on_disk >= compressed > 0
    # The same figures ClickHouse reports for the table.
    want = ch_client.query(
        "SELECT sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND table = 'otel_logs' AND active",
        parameters={"db": db},
    ).result_rows[0]
    assert (on_disk, uncompressed) == tuple(float(v) for v in want)
    # Empty tables are reported with zeros, not left out.
    assert value(metrics_catalog.TABLE_ROWS, table="otel_traces") == 0
    assert value(metrics_catalog.TABLE_PARTS, table="otel_traces") == 0
    assert value(metrics_catalog.MERGES_RUNNING, table="otel_logs") == 0
    # Views are not tables with parts.
    assert value(metrics_catalog.TABLE_ROWS, table="otel_trace_index_mv") is None
    ch_client.command(f"SYSTEM START MERGES {db}.otel_logs")


def test_unreachable_clickhouse_sets_up_to_zero(make_config, tmp_path):
    cfg = make_config(clickhouse={"url": f"http://127.0.0.1:{free_port()}", "connect_timeout_s": 1})
    collector = chstats.StatsCollector(cfg, lambda: (True, "ok"))
    assert collector.collect_clickhouse() is False
    assert value(metrics_catalog.CLICKHOUSE_UP) == 0


def test_collector_thread_publishes_limits_readiness_and_spill(migrated):
    spill = migrated.data_path / chstats.SPILL_DIR_NAME
    for writer, name, size in (("writer-0", "seg-00000000000000000001.spill", 1000),
                               ("writer-1", "seg-00000000000000000007.spill", 234)):
        (spill / writer / "quarantine").mkdir(parents=True)
        (spill / writer / name).write_bytes(b"x" * size)
        # Not segments: the ledger and quarantined bytes are outside the budget.
        (spill / writer / "ledger.json").write_text('{"segment": 1, "offset": 0}')
        (spill / writer / "quarantine" / "seg-00000000000000000001.bad").write_bytes(b"q" * 99)
    collector = chstats.StatsCollector(
        migrated, lambda: (True, "ok"), clickhouse_interval_s=60, local_interval_s=0.05
    )
    before = time.time()
    collector.start()
    try:
        deadline = time.monotonic() + 20
        while (value(metrics_catalog.CLICKHOUSE_STATS_TIMESTAMP) or 0) < before and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.stop()
    assert (value(metrics_catalog.CLICKHOUSE_STATS_TIMESTAMP) or 0) >= before
    assert value(metrics_catalog.READY) == 1
    assert value(metrics_catalog.SPILL_BYTES) == 1234
    assert value(metrics_catalog.SPILL_BUDGET_BYTES) == migrated.spill.disk_budget_mib * MIB
    assert value(metrics_catalog.MEMORY_LIMIT_BYTES, limit="hard") == migrated.memory.hard_limit_mib * MIB
    assert value(metrics_catalog.MEMORY_LIMIT_BYTES, limit="soft") == migrated.memory.effective_soft_limit_mib * MIB


def test_not_ready_means_no_clickhouse_query(make_config):
    cfg = make_config()  # database not migrated: querying would report nothing useful
    calls = []
    collector = chstats.StatsCollector(cfg, lambda: (calls.append(1) or False, "starting"), local_interval_s=0.05)
    collector.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        collector.stop()
    assert len(calls) >= 6
    assert value(metrics_catalog.READY) == 0
    assert collector._client is None


def test_catalog_names_every_gauge_the_collector_defines():
    defined = {m.name for m in REGISTRY.collect() if m.name.startswith("otel_")}
    assert defined <= {f.name for f in metrics_catalog.SUPERVISOR} | {f.name.removesuffix("_total") for f in metrics_catalog.PIPELINE}
    assert {f.name for f in metrics_catalog.SUPERVISOR} <= defined
