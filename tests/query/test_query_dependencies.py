"""Service dependencies: the hourly rollup, its record of final hours, the backfill, and windows that
mix rolled-up hours with raw spans. Counts are checked against the rule computed here by hand."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import anyio
import pytest

import querydata as qd
from otelingest.clickhouse.client import connect
from otelingest.config import Config, QueryConfig
from otelingest.jobs import dependencies as rollup
from otelingest.query import dependencies
from otelingest.query.storage.pool import ClientPool
from otelingest.query.storage.store import Store, TenantStore

NS = qd.NS
MINUTE = 60 * NS
HOUR = rollup.HOUR_NS
FINAL_AFTER = rollup.FINAL_AFTER_NS


@dataclass
class Call:
    parent_ts: int
    child_ts: int
    parent: str
    child: str
    error: bool = False


def base_hour() -> int:
    """H0: a closed hour a day ago (inside raw retention, old enough for every hour after it to be final)."""
    return (time.time_ns() // HOUR) * HOUR - 30 * HOUR


def calls_of(h0: int) -> list[Call]:
    """Calls whose children started in the six hours H0..H5 (one parent is in the hour before H0)."""
    out = []
    for i in range(6):
        h = h0 + i * HOUR
        out += [Call(h + 5 * MINUTE + k * NS, h + 5 * MINUTE + k * NS + 20_000_000, "frontend", "checkout",
                     error=(k == 0 and i % 2 == 0)) for k in range(i + 1)]
        out.append(Call(h + 30 * MINUTE, h + 30 * MINUTE + NS, "checkout", "payment"))
        out.append(Call(h + 31 * MINUTE, h + 31 * MINUTE + NS, "checkout", "checkout"))  # same service: not a call
    h3 = h0 + 3 * HOUR
    out.append(Call(h3 - 100_000_000, h3 + 100_000_000, "frontend", "cart"))  # parent in the hour before: counted
    out.append(Call(h0 + HOUR + 10 * MINUTE, h3 + 7 * MINUTE, "scheduler", "worker"))  # two hours before: not counted
    out.append(Call(h0 - 30 * MINUTE, h0 + 40 * MINUTE, "frontend", "search"))  # parent before H0: counted in H0
    return out


def expected(calls: list[Call], start: int, end: int) -> list[tuple[str, str, int, int]]:
    """The rule: a call counts in its child's hour when the parent started in that hour or the one before."""
    totals: dict[tuple[str, str], list[int]] = {}
    for c in calls:
        if start <= c.child_ts < end and c.parent != c.child and c.child_ts // HOUR - c.parent_ts // HOUR in (0, 1):
            t = totals.setdefault((c.parent, c.child), [0, 0])
            t[0] += 1
            t[1] += c.error
    return [(p, ch, n, e) for (p, ch), (n, e) in sorted(totals.items())]


_serial = iter(range(1, 1 << 30))


def insert_calls(client: Any, db: str, calls: list[Call]) -> None:
    """Parents and children in separate inserts, as from two SDKs."""
    parents, children = [], []
    for c in calls:
        n = next(_serial)
        trace = n.to_bytes(16, "big")
        parent_id, child_id = (2 * n).to_bytes(8, "big"), (2 * n + 1).to_bytes(8, "big")
        parents.append(qd.span(c.parent_ts, trace, parent_id, qd.ZERO_SPAN, "call", "CLIENT", c.parent, {}, {}, 1000))
        children.append(qd.span(c.child_ts, trace, child_id, parent_id, "serve", "SERVER", c.child, {}, {}, 500,
                                status="ERROR" if c.error else "UNSET"))
    qd.insert_rows(client, db, "otel_traces", qd.SPAN_COLUMNS, parents)
    qd.insert_rows(client, db, "otel_traces", qd.SPAN_COLUMNS, children)


class RecordingStore(TenantStore):
    """The real store, remembering which named queries ran with which parameters."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def named(self, name: str, params: dict[str, Any] | None = None, **kw: Any) -> list[tuple]:
        self.calls.append((name, dict(params or {})))
        return await super().named(name, params, **kw)

    def params(self, name: str) -> list[dict[str, Any]]:
        return [p for n, p in self.calls if n == name]


@dataclass
class Env:
    cfg: Config
    db: str
    client: Any  # the writing user's client, bound to the database
    store: RecordingStore
    h0: int
    calls: list[Call]

    def h(self, i: int) -> int:
        return self.h0 + i * HOUR

    def query(self, start: int, end: int) -> list[tuple[str, str, int, int]]:
        self.store.calls.clear()
        return anyio.run(dependencies.dependencies, self.store, start, end)

    def raw(self, start: int, end: int) -> list[tuple[str, str, int, int]]:
        rows = anyio.run(self.store.named, "dependencies/raw", {"start_ns": start, "end_ns": end})
        return [(p, c, int(n), int(e)) for p, c, n, e in rows]


@pytest.fixture
def env(migrated: Config) -> Iterator[Env]:
    """A fresh database holding calls_of(H0), nothing rolled up."""
    client = connect(migrated.clickhouse)
    pool = ClientPool(migrated.clickhouse, read_only=True)
    h0 = base_hour()
    calls = calls_of(h0)
    insert_calls(client, migrated.clickhouse.database, calls)
    try:
        yield Env(migrated, migrated.clickhouse.database, client, RecordingStore(Store(pool, QueryConfig(timeout_s=60)), "default"),
                  h0, calls)
    finally:
        pool.close()
        client.close()


def seconds(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(a // NS, b // NS) for a, b in intervals]


def test_runs_and_gaps():
    h = HOUR
    assert dependencies.runs([]) == []
    assert dependencies.runs([h, 2 * h, 4 * h]) == [(h, 3 * h), (4 * h, 5 * h)]
    assert dependencies.gaps(10, 6 * h, [(h, 3 * h), (4 * h, 5 * h)]) == [(10, h), (3 * h, 4 * h), (5 * h, 6 * h)]
    assert dependencies.gaps(h, 3 * h, [(h, 3 * h)]) == []
    assert dependencies.gaps(5, 7, []) == [(5, 7)]


def test_window_mixing_final_missing_early_hours_and_unaligned_edges_is_exact(env):
    h = env.h
    # H1 computed exactly when it becomes final, H4 later; H3 too early (an hour after it closed);
    # H2 never (the job was not running).
    rollup.rollup_hour(env.client, h(1), now_ns=h(1) + FINAL_AFTER)
    rollup.rollup_hour(env.client, h(4), now_ns=h(4) + FINAL_AFTER + MINUTE)
    rollup.rollup_hour(env.client, h(3), now_ns=h(3) + HOUR + 5 * MINUTE)
    # A span of H3 arrives after that early computation: only the raw join knows it.
    late = [Call(h(3) + 40 * MINUTE, h(3) + 41 * MINUTE, "frontend", "checkout", error=True)]
    insert_calls(env.client, env.db, late)

    start, end = h(0) + 20 * MINUTE, h(5) + 10 * MINUTE
    want = expected(env.calls + late, start, end)
    assert env.query(start, end) == want
    # Final hours from the rollup, everything else (edges, H2, H3) over raw spans, one query per part.
    assert env.store.params("dependencies/hourly") == [{"runs": seconds([(h(1), h(2)), (h(4), h(5))])}]
    raw = sorted((p["start_ns"], p["end_ns"]) for p in env.store.params("dependencies/raw"))
    assert raw == [(start, h(1)), (h(2), h(4)), (h(5), end)]
    # The same answer as joining the whole window over raw spans: the split does not change it.
    assert env.raw(start, end) == want
    # A window inside one hour never asks for the rollup.
    assert env.query(h(1) + MINUTE, h(1) + 40 * MINUTE) == expected(env.calls, h(1) + MINUTE, h(1) + 40 * MINUTE)
    assert [n for n, _ in env.store.calls] == ["dependencies/raw"]


def test_each_hour_is_computed_once_when_it_can_be_final(env):
    h = env.h
    # At H4 + 5 min only H1 can be final (computed two hours after its end); H2 and H3 would be
    # early computations, which queries never read, so the job leaves them to the raw join.
    assert rollup.backfill(env.client, limit=6, now_ns=h(4) + 5 * MINUTE) == [h(1), h(0), h(-1)]
    start, end = h(1), h(4)
    assert env.query(start, end) == expected(env.calls, start, end)
    assert env.store.params("dependencies/hourly") == [{"runs": seconds([(h(1), h(2))])}]  # H2, H3 read raw
    # The next run in the same hour computes nothing: no hour is computed twice.
    assert rollup.backfill(env.client, limit=6, now_ns=h(4) + 10 * MINUTE) == []

    late = [Call(h(1) + 50 * MINUTE, h(1) + 51 * MINUTE, "frontend", "cart"),
            Call(h(3) + 50 * MINUTE, h(3) + 51 * MINUTE, "frontend", "cart")]
    insert_calls(env.client, env.db, late)
    # H3 is read raw: its late call counts at once. H1 went final before its late call came (later
    # than ROLLUP_LAG_NS after its end): not counted, as the module says.
    assert env.query(start, end) == expected(env.calls + late[1:], start, end)
    # Two hours later H2 and H3 become final, with their late spans: the window is all rollup.
    assert rollup.backfill(env.client, limit=6, now_ns=h(6) + 5 * MINUTE) == [h(3), h(2)]
    assert env.query(start, end) == expected(env.calls + late[1:], start, end)
    assert env.store.params("dependencies/raw") == []


def test_backfill_computes_a_bounded_number_of_hours_newest_first(env):
    h = env.h
    now = h(5) + FINAL_AFTER  # H5 and every hour before it can be made final
    rollup.rollup_hour(env.client, h(5), now_ns=h(5) + HOUR)  # too early: still to do
    rollup.rollup_hour(env.client, h(2), now_ns=h(2) + FINAL_AFTER)  # final: done
    # Every hour holding spans (H-1 holds a parent), newest first, but H2.
    assert rollup.pending_hours(env.client, limit=100, now_ns=now) == [h(5), h(4), h(3), h(1), h(0), h(-1)]
    # A moment earlier, H5 could not be made final yet.
    assert rollup.pending_hours(env.client, limit=100, now_ns=now - 1) == [h(4), h(3), h(1), h(0), h(-1)]
    assert rollup.backfill(env.client, limit=0, now_ns=now) == []
    assert rollup.backfill(env.client, limit=3, now_ns=now) == [h(5), h(4), h(3)]
    assert rollup.backfill(env.client, limit=3, now_ns=now) == [h(1), h(0), h(-1)]
    assert rollup.backfill(env.client, limit=3, now_ns=now) == []
    # Every hour is final now: a whole-hours window reads only the rollup, and is still exact.
    assert env.query(h(0), h(6)) == expected(env.calls, h(0), h(6))
    assert [n for n, _ in env.store.calls] == ["dependencies/final_hours", "dependencies/hourly"]


def test_hours_older_than_every_span_come_from_the_rollup_without_a_record(env):
    """Rollup rows written before the record existed (an upgraded database) stay readable once their
    spans have expired; where spans remain, unrecorded rollup rows are not trusted."""
    h = env.h
    old = h(0) - 10 * HOUR
    rows = [[old // NS, "legacy", "svc", 7, 1], [h(2) // NS, "bogus", "x", 99, 0]]
    env.client.insert("otel_service_dependencies_1h", rows,
                      column_names=["TimeBucket", "Parent", "Child", "CallCount", "ErrorCount"])
    start, end = old - HOUR, h(3)
    assert env.query(start, end) == sorted(expected(env.calls, start, end) + [("legacy", "svc", 7, 1)])


def test_backfill_finds_utc_hours_when_the_server_zone_is_not_a_whole_hour_off(migrated: Config):
    """otel_span_stats_1h buckets at the server zone's hours: on +05:30 they start at :30 UTC, and
    the backfill must still name every UTC hour that holds spans."""
    client = connect(migrated.clickhouse)
    try:
        h0 = base_hour()
        calls = [Call(h0 + 10 * MINUTE, h0 + 11 * MINUTE, "frontend", "checkout"),
                 Call(h0 + 50 * MINUTE, h0 + 51 * MINUTE, "frontend", "checkout")]
        # The views run in the inserting session's zone, as they would on a +05:30 server.
        kolkata = connect(migrated.clickhouse)
        kolkata.set_client_setting("session_timezone", "Asia/Kolkata")
        insert_calls(kolkata, migrated.clickhouse.database, calls)
        kolkata.close()
        buckets = client.query("SELECT DISTINCT toUnixTimestamp(TimeBucket) % 3600 FROM otel_span_stats_1h").result_rows
        assert buckets == [(1800,)]  # the setup worked: buckets start at :30 UTC
        now = h0 + 2 * HOUR + FINAL_AFTER
        # Both UTC hours each bucket overlaps; the one after h0 holds no span (computing it finds
        # nothing, and records it).
        assert rollup.pending_hours(client, limit=100, now_ns=now) == [h0 + HOUR, h0]
        assert rollup.backfill(client, limit=100, now_ns=now) == [h0 + HOUR, h0]
        assert rollup.pending_hours(client, limit=100, now_ns=now) == []
    finally:
        client.close()
