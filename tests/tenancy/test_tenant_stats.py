"""Per-tenant storage for the self-metrics and `otelingest status`: rows per tenant counted once per
part, bytes shared out by them, on the real embedded ClickHouse."""

from __future__ import annotations

import time
from typing import Callable

import querydata as qd
from otelingest.clickhouse import migrations as schema
from otelingest.clickhouse.client import connect
from otelingest.config import Config
from otelingest.selfmon import tablestats


def test_rows_and_bytes_per_tenant(make_config: Callable[..., Config]) -> None:
    cfg = make_config(tenancy={"mode": "header"})
    schema.migrate(cfg)
    db = cfg.clickhouse.database
    client = connect(cfg.clickhouse)
    now = time.time_ns()
    try:
        # Tenants mixed in one insert (one part), as the writers' batches mix them.
        qd.insert_rows(client, db, "otel_traces", ["TenantId"] + qd.SPAN_COLUMNS, [
            [tenant] + qd.span(now + i, (i + 1).to_bytes(16, "big"), b"\1" * 8, qd.ZERO_SPAN, "op", "SERVER",
                               "svc", {}, {}, 1000) for tenant, n in (("team-a", 10), ("team-b", 4)) for i in range(n)])
        qd.insert_rows(client, db, "otel_logs", ["TenantId"] + qd.LOG_COLUMNS, [
            ["team-a", now, now, qd.ZERO_TRACE, qd.ZERO_SPAN, 0, "INFO", 9, "svc", "line", {}, "s", {}]] * 3)
        storage = tablestats.TenantStorage()
        stats = storage.collect(client, db)
        assert set(stats) == {"team-a", "team-b"}
        assert {s: r for s, (r, _) in stats["team-a"].items()} == {"traces": 10, "logs": 3}
        assert {s: r for s, (r, _) in stats["team-b"].items()} == {"traces": 4}
        parts = client.query("SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active "
                             "AND table IN ('otel_traces', 'otel_trace_index', 'otel_trace_times', 'otel_span_stats_1h') "
                             "GROUP BY table", parameters={"db": db}).result_rows
        # Every byte of the traces tables is some tenant's (rounding aside).
        total = sum(int(b) for _, b in parts)
        shared = stats["team-a"]["traces"][1] + stats["team-b"]["traces"][1]
        assert abs(total - shared) <= 8, (total, shared)
        assert stats["team-a"]["traces"][1] > 0 and stats["team-b"]["traces"][1] > 0
        # A second collection counts only new parts; the result is the same.
        counted = {t: dict(p) for t, p in storage.parts.items()}
        assert storage.collect(client, db) == stats and storage.parts == counted
        qd.insert_rows(client, db, "otel_logs", ["TenantId"] + qd.LOG_COLUMNS, [
            ["team-b", now, now, qd.ZERO_TRACE, qd.ZERO_SPAN, 0, "INFO", 9, "svc", "line", {}, "s", {}]])
        assert storage.collect(client, db)["team-b"]["logs"][0] == 1
        bounded = tablestats.bound_tenants(stats, 1)
        assert set(bounded) == {"team-a", "<other>"}
        assert bounded["<other>"] == stats["team-b"]
    finally:
        client.close()
