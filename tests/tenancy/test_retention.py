"""Per-tenant retention enforced by TTL (docs/tenancy.md, "Retention per tenant"), on the real
embedded ClickHouse: a tenant's expired rows go, another tenant's of the same age stay, the rule is
applied once (a second start changes nothing) and taken back when the config no longer asks for it."""

from __future__ import annotations

import time
from typing import Any, Callable

import querydata as qd
from otelingest.clickhouse import migrations as schema
from otelingest.clickhouse.client import connect
from otelingest.config import Config

NS = qd.NS
DAY = 86400 * NS
AGES = (3, 10, 40, 100)  # days
TENANTS = {"team-a": {"retention": {"traces": 7, "logs": 7, "metrics": 7}},
           "team-b": {"retention": {"traces": 60}},  # longer than the default: kept past it
           "o'brien": {"retention": {"logs": 7}}}  # a quote is a valid tenant id character


def engine(client: Any, table: str) -> str:
    return client.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
                        parameters={"t": table}).result_rows[0][0]


def ages(client: Any, table: str, column: str) -> dict[str, list[int]]:
    rows = client.query(f"SELECT TenantId, groupArray(intDiv(toUnixTimestamp(now()) - toUnixTimestamp({column}), 86400)) "
                        f"FROM {table} GROUP BY TenantId ORDER BY TenantId").result_rows
    return {t: sorted(a) for t, a in rows}


def expire(client: Any, table: str) -> None:
    # Forces the TTL merges the background would run (ttl_only_drop_parts = 0: rows deleted in merges).
    client.command(f"OPTIMIZE TABLE {table} FINAL")


def test_each_tenant_keeps_its_own_days(make_config: Callable[..., Config]) -> None:
    cfg = make_config(tenancy={"mode": "header", "tenants": TENANTS})
    applied, changed = schema.migrate(cfg)
    assert applied and set(changed) == {"otel_traces", "otel_trace_times", "otel_trace_index", "otel_logs",
                                        "otel_metrics", "otel_metrics_metadata", "otel_metrics_exemplars",
                                        "otel_prom_samples", "otel_prom_series"}
    assert schema.migrate(cfg) == ([], [])  # idempotent: nothing rewritten at the next start
    client = connect(cfg.clickhouse)
    try:
        assert "transform(TenantId" in engine(client, "otel_traces")
        assert "ttl_only_drop_parts = 0" in engine(client, "otel_traces")
        # No tenant sets a rollup's days: the rollups keep one rule, whole parts.
        assert "TTL TimeBucket + toIntervalDay(365) " in engine(client, "otel_span_stats_1h")
        assert "ttl_only_drop_parts = 1" in engine(client, "otel_span_stats_1h")

        now = time.time_ns()
        tenants = ["default", "team-a", "team-b", "o'brien"]
        spans, logs, samples = [], [], []
        for tenant in tenants:
            for n, age in enumerate(AGES):
                ts = now - age * DAY
                spans.append([tenant] + qd.span(ts, (n + 1).to_bytes(16, "big"), b"\1" * 8, qd.ZERO_SPAN, "op",
                                                "SERVER", "svc", {}, {}, 1000))
                logs.append([tenant, ts, ts, qd.ZERO_TRACE, qd.ZERO_SPAN, 0, "INFO", 9, "svc", "line", {}, "s", {}])
                samples.append([tenant, "up", "svc", 1, ts, 1.0])
        qd.insert_rows(client, cfg.clickhouse.database, "otel_traces", ["TenantId"] + qd.SPAN_COLUMNS, spans)
        qd.insert_rows(client, cfg.clickhouse.database, "otel_logs", ["TenantId"] + qd.LOG_COLUMNS, logs)
        qd.insert_rows(client, cfg.clickhouse.database, "otel_prom_samples",
                       ["TenantId", "MetricName", "ServiceName", "SeriesId", "TimeUnix", "Value"], samples)
        for table in ("otel_traces", "otel_trace_index", "otel_logs", "otel_prom_samples"):
            expire(client, table)
        # Default 30 days; team-a 7 everywhere; team-b 60 for traces; o'brien 7 for logs.
        assert ages(client, "otel_traces", "Timestamp") == {
            "default": [3, 10], "o'brien": [3, 10], "team-a": [3], "team-b": [3, 10, 40]}
        assert ages(client, "otel_trace_index", "Timestamp") == {
            "default": [3, 10], "o'brien": [3, 10], "team-a": [3], "team-b": [3, 10, 40]}
        assert ages(client, "otel_logs", "Timestamp") == {
            "default": [3, 10], "o'brien": [3], "team-a": [3], "team-b": [3, 10]}
        assert ages(client, "otel_prom_samples", "TimeUnix") == {
            "default": [3, 10], "o'brien": [3, 10], "team-a": [3], "team-b": [3, 10]}

        # The overrides removed (a SIGHUP or restart): back to one rule and whole-part drops.
        plain = make_config(clickhouse={"database": cfg.clickhouse.database}, tenancy={"mode": "header"})
        assert "otel_traces" in schema.migrate(plain)[1]
        assert "transform" not in engine(client, "otel_traces")
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30) " in engine(client, "otel_traces")
        assert "ttl_only_drop_parts = 1" in engine(client, "otel_traces")
        assert schema.migrate(plain) == ([], [])
    finally:
        client.close()


def test_each_tenant_keeps_its_own_days_of_rollups(make_config: Callable[..., Config]) -> None:
    # Global: metrics_5m 90, metrics_1h 365, span_stats 365, dependencies 365.
    tenants = {"team-a": {"retention": {"metrics_5m": 7, "metrics_1h": 20, "span_stats": 7, "dependencies": 7}},
               "team-b": {"retention": {"span_stats": 400, "dependencies": 400}}}
    cfg = make_config(tenancy={"mode": "header", "tenants": tenants})
    applied, changed = schema.migrate(cfg)
    assert set(changed) == {"otel_metrics_5m", "otel_metrics_1h", "otel_span_stats_1h", "otel_service_dependencies_1h",
                            "otel_service_dependency_hours", "otel_prom_series"}
    assert schema.migrate(cfg) == ([], [])
    client = connect(cfg.clickhouse)
    try:
        assert "transform(TenantId" in engine(client, "otel_span_stats_1h")
        assert "ttl_only_drop_parts = 0" in engine(client, "otel_metrics_5m")
        # The dependency job's record of computed hours: one rule, the longest days of any tenant.
        hours = engine(client, "otel_service_dependency_hours")
        assert "TTL TimeBucket + toIntervalDay(400) " in hours and "transform" not in hours
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30) " in engine(client, "otel_traces")  # raw: untouched
        # Remote-written series' labels: each tenant's longest metric days (team-a's 30 raw, the rest 365).
        assert schema.parse_ttl(engine(client, "otel_prom_series"))[0] == schema.Ttl(365, (("team-a", 30),))

        now = time.time_ns()
        ages_days = (3, 10, 40, 100, 380)
        spans, points, deps = [], [], []
        for tenant in ("default", "team-a", "team-b"):
            for n, age in enumerate(ages_days):
                ts = now - age * DAY
                spans.append([tenant] + qd.span(ts, (n + 1).to_bytes(16, "big"), b"\1" * 8, qd.ZERO_SPAN, "op",
                                                "SERVER", "svc", {}, {}, 1000))
                points.append([tenant] + qd.metric_row(ts, ts, "queue.depth", "1", "Gauge", "Unspecified", False, {},
                                                       value=float(n)))
                deps.append([tenant, (ts // DAY) * 86400, "web", "db", 1, 0])
        db = cfg.clickhouse.database
        qd.insert_rows(client, db, "otel_traces", ["TenantId"] + qd.SPAN_COLUMNS, spans)  # fills otel_span_stats_1h
        qd.insert_rows(client, db, "otel_metrics", ["TenantId"] + qd.METRIC_COLUMNS, points)  # and the metric rollups
        qd.insert_rows(client, db, "otel_service_dependencies_1h",
                       ["TenantId", "TimeBucket", "Parent", "Child", "CallCount", "ErrorCount"], deps)
        for table in ("otel_span_stats_1h", "otel_metrics_5m", "otel_metrics_1h", "otel_service_dependencies_1h"):
            expire(client, table)
        assert ages(client, "otel_span_stats_1h", "TimeBucket") == {
            "default": [3, 10, 40, 100], "team-a": [3], "team-b": [3, 10, 40, 100, 380]}
        assert ages(client, "otel_metrics_5m", "TimeBucket") == {
            "default": [3, 10, 40], "team-a": [3], "team-b": [3, 10, 40]}
        assert ages(client, "otel_metrics_1h", "TimeBucket") == {
            "default": [3, 10, 40, 100], "team-a": [3, 10], "team-b": [3, 10, 40, 100]}
        assert ages(client, "otel_service_dependencies_1h", "TimeBucket") == {
            "default": [3, 10, 40, 100], "team-a": [3], "team-b": [3, 10, 40, 100, 380]}

        # The overrides removed: one rule and whole-part drops again, the hours table back to 365.
        plain = make_config(clickhouse={"database": db}, tenancy={"mode": "header"})
        assert set(schema.migrate(plain)[1]) == set(changed)
        assert "TTL TimeBucket + toIntervalDay(365) " in engine(client, "otel_span_stats_1h")
        assert "ttl_only_drop_parts = 1" in engine(client, "otel_span_stats_1h")
        assert "TTL TimeBucket + toIntervalDay(365) " in engine(client, "otel_service_dependency_hours")
    finally:
        client.close()


def test_tenancy_defaults_set_everyones_days_and_tenancy_off_ignores_tenants(make_config: Callable[..., Config]) -> None:
    cfg = make_config(tenancy={"mode": "header", "defaults": {"retention": {"logs": 14}},
                               "tenants": {"team-a": {"retention": {"logs": 14}}}})
    schema.migrate(cfg)
    client = connect(cfg.clickhouse)
    try:
        # team-a's days equal the default: one rule, 14 days, for everyone.
        assert "TTL toDateTime(Timestamp) + toIntervalDay(14) " in engine(client, "otel_logs")
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30) " in engine(client, "otel_traces")
        off = make_config(clickhouse={"database": cfg.clickhouse.database},
                          tenancy={"mode": "off", "tenants": TENANTS})
        assert schema.migrate(off)[1] == ["otel_logs"]  # back to [retention] (off behaves as before tenancy)
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30) " in engine(client, "otel_logs")
    finally:
        client.close()


def test_parse_ttl_reads_back_what_clickhouse_stores() -> None:
    stored = ("MergeTree PARTITION BY toDate(Timestamp) ORDER BY (TenantId, Timestamp) TTL toDateTime(Timestamp) + "
              "toIntervalDay(transform(TenantId, _CAST(['a', 'b\\'c', 'long'], 'Array(String)'), "
              "_CAST([7, 3, 60], 'Array(UInt16)'), _CAST(30, 'UInt16'))) SETTINGS ttl_only_drop_parts = 0, "
              "index_granularity = 8192")
    assert schema.parse_ttl(stored) == (schema.Ttl(30, (("a", 7), ("b'c", 3), ("long", 60))), False)
    assert schema.parse_ttl("MergeTree ORDER BY x TTL toDateTime(t) + toIntervalDay(30) SETTINGS index_granularity = 8192") \
        == (schema.Ttl(30), True)
    assert schema.parse_ttl("MergeTree ORDER BY x") == (None, True)
