"""The dependency rollup job per tenant: one run computes every tenant's hour, each tenant's service
graph its own (a trace id sent by two tenants never joins across them), and the hour is recorded
as computed for each tenant that has spans in it."""

from __future__ import annotations

import time
from typing import Any

import querydata as qd
from otelingest.clickhouse.client import connect
from otelingest.config import Config
from otelingest.jobs import dependencies as rollup

NS = qd.NS
HOUR = rollup.HOUR_NS
COLUMNS = ["TenantId"] + qd.SPAN_COLUMNS


def call(tenant: str, ts: int, trace: bytes, n: int, parent: str, child: str, error: bool = False) -> list[list[Any]]:
    parent_id, child_id = (2 * n).to_bytes(8, "big"), (2 * n + 1).to_bytes(8, "big")
    return [
        [tenant] + qd.span(ts, trace, parent_id, qd.ZERO_SPAN, "call", "CLIENT", parent, {}, {}, 1000),
        [tenant] + qd.span(ts + 1000, trace, child_id, parent_id, "serve", "SERVER", child, {}, {}, 500,
                           status="ERROR" if error else "UNSET"),
    ]


def test_each_tenant_gets_its_own_service_graph(migrated: Config) -> None:
    client = connect(migrated.clickhouse)
    db = migrated.clickhouse.database
    h0 = (time.time_ns() // HOUR) * HOUR - 30 * HOUR
    shared = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")  # the same trace id in both tenants
    rows = []
    rows += call("team-a", h0 + 60 * NS, shared, 1, "frontend", "checkout", error=True)
    rows += call("team-a", h0 + 61 * NS, (2).to_bytes(16, "big"), 2, "frontend", "checkout")
    rows += call("team-b", h0 + 62 * NS, shared, 3, "api", "db")
    # team-b's child whose parent id exists only in team-a (same trace, same span id): no edge.
    rows.append(["team-b"] + qd.span(h0 + 63 * NS, shared, (9).to_bytes(8, "big"), (2).to_bytes(8, "big"), "serve",
                                     "SERVER", "intruder", {}, {}, 500))
    try:
        qd.insert_rows(client, db, "otel_traces", COLUMNS, rows)
        rollup.rollup_hour(client, h0, now_ns=h0 + rollup.FINAL_AFTER_NS)
        rollup.rollup_hour(client, h0, now_ns=h0 + rollup.FINAL_AFTER_NS)  # re-run: replaces, not doubles
        got = client.query(
            "SELECT TenantId, Parent, Child, sum(CallCount), sum(ErrorCount) FROM otel_service_dependencies_1h FINAL "
            "GROUP BY TenantId, Parent, Child ORDER BY TenantId, Parent, Child").result_rows
        assert got == [("team-a", "frontend", "checkout", 2, 1), ("team-b", "api", "db", 1, 0)]
        marks = client.query(
            "SELECT TenantId, toUnixTimestamp(TimeBucket) FROM otel_service_dependency_hours "
            "GROUP BY TenantId, TimeBucket ORDER BY TenantId").result_rows
        assert marks == [("default", h0 // NS), ("team-a", h0 // NS), ("team-b", h0 // NS)]
        # Final for every tenant: the next run has nothing left to do.
        assert rollup.backfill(client, limit=6, now_ns=h0 + rollup.FINAL_AFTER_NS + NS) == []
    finally:
        client.close()
