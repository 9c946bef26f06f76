"""Service dependencies (parent service -> child service call counts).

A parent span and its child usually arrive in different inserts (different services, different
SDKs), so no materialized view can join them. Recent windows are answered by a query-time join
over raw spans; ``rollup_hours`` fills ``otel_service_dependencies_1h`` from closed hours; the query
process runs it every ``[query] dependencies_rollup_interval_s`` (``run_rollup_forever``) with the
writing user, recomputing the last closed hours idempotently (ReplacingMergeTree).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from clickhouse_connect.driver.client import Client

from .. import sqlfiles
from ..config import ClickHouseConfig
from .store import Store
from .timeparse import NS

log = logging.getLogger(__name__)

HOUR_NS = 3600 * NS
# Windows up to this long are joined over raw spans at query time; longer ones use the rollup for
# hours that closed more than ROLLUP_LAG_NS ago (the job has filled them by then).
RAW_WINDOW_NS = 24 * HOUR_NS
ROLLUP_LAG_NS = 2 * HOUR_NS
DEFAULT_ROLLUP_HOURS = 3


def rollup_hour(client: Client, hour_start_ns: int) -> None:
    """(Re)compute one hour of otel_service_dependencies_1h. ``client`` must be allowed to INSERT."""
    hour = hour_start_ns - hour_start_ns % HOUR_NS
    client.command(sqlfiles.query("dependencies_rollup"), parameters={"hour_ns": hour})


def rollup_hours(client: Client, *, hours: int = DEFAULT_ROLLUP_HOURS, now_ns: int | None = None) -> list[int]:
    """Recompute the last ``hours`` closed hours; returns their start times (ns). Call periodically."""
    now = time.time_ns() if now_ns is None else now_ns
    current = now - now % HOUR_NS
    done = []
    for i in range(hours, 0, -1):
        h = current - i * HOUR_NS
        rollup_hour(client, h)
        done.append(h)
    return done


async def run_rollup_forever(cfg: ClickHouseConfig, interval_s: float) -> None:
    """Recompute the last closed hours every ``interval_s`` (the query process runs this task)."""
    import anyio.to_thread

    from ..clickhouse.client import connect

    while True:
        try:
            def once() -> None:
                client = connect(cfg)
                try:
                    rollup_hours(client)
                finally:
                    client.close()

            await anyio.to_thread.run_sync(once)
        except Exception as e:  # ClickHouse down or schema not there yet: try again next time
            log.warning("dependency rollup failed: %s", e)
        await anyio.sleep(interval_s)


async def dependencies(store: Store, start_ns: int, end_ns: int, **kw: Any) -> list[tuple[str, str, int, int]]:
    """(parent, child, calls, errors) in the window."""
    totals: dict[tuple[str, str], list[int]] = {}
    raw_from = start_ns
    if end_ns - start_ns > RAW_WINDOW_NS:
        now = time.time_ns()
        boundary = min(end_ns, now - ROLLUP_LAG_NS)
        boundary -= boundary % HOUR_NS
        if boundary > start_ns:
            rows = await store.named("dependencies_hourly", {"start_ns": start_ns, "end_ns": boundary}, **kw)
            for p, c, calls, errors in rows:
                totals[(p, c)] = [int(calls), int(errors)]
            raw_from = boundary
    if raw_from < end_ns:
        rows = await store.named("dependencies_recent", {"start_ns": raw_from, "end_ns": end_ns}, **kw)
        for p, c, calls, errors in rows:
            t = totals.setdefault((p, c), [0, 0])
            t[0] += int(calls)
            t[1] += int(errors)
    return [(p, c, v[0], v[1]) for (p, c), v in sorted(totals.items())]
