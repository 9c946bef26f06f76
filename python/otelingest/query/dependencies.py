"""Service dependencies (parent service -> child service call counts).

A parent span and its child usually arrive in different inserts (different services, different
SDKs), so no materialized view can join them: the counts come from joining raw spans, at query
time or ahead of time, per hour, into ``otel_service_dependencies_1h``.

What counts: a call belongs to the hour its child span started, and counts when its parent (same
trace, another service) started in that hour or the one before. The raw join
(``dependencies_raw.sql``) and the hourly rollup (``dependencies_rollup.sql``) apply the same rule,
so a window's answer does not depend on which of its hours were rolled up.

The rollup job (``run_rollup_forever``: the query process runs it every ``[query]
dependencies_rollup_interval_s``, with the writing user) computes an hour, then records it in
``otel_service_dependency_hours`` with the time it read the spans. An hour is *final* when that time
is at least ``ROLLUP_LAG_NS`` after the hour's end (spans arriving later than that are not waited
for). Each run recomputes the last ``DEFAULT_ROLLUP_HOURS`` closed hours (late spans are picked up,
and the oldest of them becomes final), then computes up to ``[query] dependencies_backfill_hours``
hours, newest first, that hold spans but no final record: after the job was stopped, or a bulk
load, it catches up without hogging ClickHouse.

A query (``dependencies``) reads from the rollup the whole hours of its window that are final, and
those older than every stored span (of which the rollup is all that is left); everything else
(unaligned edges, recent hours, hours never or too early computed) is joined over raw spans, one
query per contiguous part, run concurrently. The answer is exact whatever the job did or did not
do; the job only makes it faster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from clickhouse_connect.driver.client import Client

from ..clickhouse import sqlfiles
from ..config import ClickHouseConfig
from .store import Store
from .timeparse import NS

log = logging.getLogger(__name__)

HOUR_NS = 3600 * NS
# How long after its end an hour's spans are taken to have all arrived (late exports, retries).
ROLLUP_LAG_NS = 2 * HOUR_NS
# An hour's computation is final when it read the spans this long after the hour began.
FINAL_AFTER_NS = HOUR_NS + ROLLUP_LAG_NS
DEFAULT_ROLLUP_HOURS = 3
DEFAULT_BACKFILL_HOURS = 6

Interval = tuple[int, int]


def _floor_hour(ns: int) -> int:
    return ns - ns % HOUR_NS


def _ceil_hour(ns: int) -> int:
    return _floor_hour(ns + HOUR_NS - 1)


def rollup_hour(client: Client, hour_start_ns: int, *, now_ns: int | None = None) -> None:
    """(Re)compute one hour of otel_service_dependencies_1h and record it as computed at ``now_ns``
    (default: now). ``client`` must be allowed to INSERT."""
    hour = _floor_hour(hour_start_ns)
    # Taken before the spans are read: the record never claims spans that arrived after the read.
    computed = time.time_ns() if now_ns is None else now_ns
    client.command(sqlfiles.query("dependencies_rollup"), parameters={"hour_ns": hour})
    client.command(sqlfiles.query("dependencies_mark_hour"), parameters={"hour_ns": hour, "computed_ns": computed})


def rollup_hours(client: Client, *, hours: int = DEFAULT_ROLLUP_HOURS, now_ns: int | None = None) -> list[int]:
    """Recompute the last ``hours`` closed hours; returns their start times (ns). Call periodically."""
    now = time.time_ns() if now_ns is None else now_ns
    current = _floor_hour(now)
    done = []
    for i in range(hours, 0, -1):
        h = current - i * HOUR_NS
        rollup_hour(client, h, now_ns=now_ns)
        done.append(h)
    return done


def pending_hours(client: Client, *, limit: int, now_ns: int | None = None) -> list[int]:
    """Up to ``limit`` hours (start times, ns, newest first) that hold spans, have no final record,
    and would be final if computed now."""
    now = time.time_ns() if now_ns is None else now_ns
    rows = client.query(sqlfiles.query("dependencies_pending_hours"), parameters={
        "last_s": _floor_hour(now - FINAL_AFTER_NS) // NS, "final_after_s": FINAL_AFTER_NS // NS, "limit": limit,
    }).result_rows
    return [int(r[0]) * NS for r in rows]


def backfill(client: Client, *, limit: int = DEFAULT_BACKFILL_HOURS, now_ns: int | None = None) -> list[int]:
    """Compute up to ``limit`` hours without a final record, newest first; returns their start times."""
    if limit <= 0:
        return []
    hours = pending_hours(client, limit=limit, now_ns=now_ns)
    for h in hours:
        rollup_hour(client, h, now_ns=now_ns)
    return hours


def run_once(client: Client, *, backfill_hours: int = DEFAULT_BACKFILL_HOURS,
             now_ns: int | None = None) -> tuple[list[int], list[int]]:
    """One run of the job: the last closed hours, then the backfill. Returns the hours of each."""
    recent = rollup_hours(client, now_ns=now_ns)
    return recent, backfill(client, limit=backfill_hours, now_ns=now_ns)


async def run_rollup_forever(cfg: ClickHouseConfig, interval_s: float,
                             backfill_hours: int = DEFAULT_BACKFILL_HOURS) -> None:
    """``run_once`` every ``interval_s`` (the query process runs this task)."""
    import anyio.to_thread

    from ..clickhouse.client import connect

    while True:
        try:
            def once() -> list[int]:
                client = connect(cfg)
                try:
                    return run_once(client, backfill_hours=backfill_hours)[1]
                finally:
                    client.close()

            filled = await anyio.to_thread.run_sync(once)
            if filled:
                log.info("dependency rollup: backfilled %d hours", len(filled))
        except Exception as e:  # ClickHouse down or schema not there yet: try again next time
            log.warning("dependency rollup failed: %s", e)
        await anyio.sleep(interval_s)


def runs(hours: list[int]) -> list[Interval]:
    """Sorted hour starts -> maximal [start, end) runs of consecutive hours."""
    out: list[Interval] = []
    for h in hours:
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + HOUR_NS)
        else:
            out.append((h, h + HOUR_NS))
    return out


def gaps(start_ns: int, end_ns: int, covered: list[Interval]) -> list[Interval]:
    """The parts of [start_ns, end_ns) outside the sorted, disjoint ``covered`` intervals."""
    out: list[Interval] = []
    at = start_ns
    for a, b in covered:
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < end_ns:
        out.append((at, end_ns))
    return out


async def dependencies(store: Store, start_ns: int, end_ns: int, **kw: Any) -> list[tuple[str, str, int, int]]:
    """(parent, child, calls, errors) in the window."""
    first, last = _ceil_hour(start_ns), _floor_hour(end_ns)
    rolled: list[Interval] = []
    if first < last:
        rows = await store.named("dependencies_final_hours", {
            "from_s": first // NS, "to_s": last // NS, "final_after_s": FINAL_AFTER_NS // NS}, **kw)
        rolled = runs([int(r[0]) * NS for r in rows])
    raw = gaps(start_ns, end_ns, rolled)
    parts = [store.named("dependencies_raw", {"start_ns": a, "end_ns": b}, **kw) for a, b in raw]
    if rolled:
        parts.append(store.named("dependencies_hourly", {"runs": [(a // NS, b // NS) for a, b in rolled]}, **kw))
    totals: dict[tuple[str, str], list[int]] = {}
    for rows in await asyncio.gather(*parts):
        for p, c, calls, errors in rows:
            t = totals.setdefault((p, c), [0, 0])
            t[0] += int(calls)
            t[1] += int(errors)
    return [(p, c, v[0], v[1]) for (p, c), v in sorted(totals.items())]
