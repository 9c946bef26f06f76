"""Service dependencies (parent service -> child service call counts) for a window.

A parent span and its child usually arrive in different inserts, so the counts come from joining
raw spans, at query time or ahead of time by the supervisor's hourly rollup
(:mod:`otelingest.jobs.dependencies`, which states the counting rule both apply).

A query reads from the rollup the whole hours of its window that are final, and those older than
every stored span (of which the rollup is all that is left); everything else (unaligned edges,
recent hours, hours never or too early computed) is joined over raw spans, one query per
contiguous part, run concurrently. The answer is exact whatever the job did or did not do; the job
only makes it faster.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..jobs.dependencies import FINAL_AFTER_NS, HOUR_NS, ceil_hour, floor_hour
from .storage.store import TenantStore
from .timeparse import NS

Interval = tuple[int, int]


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


async def dependencies(store: TenantStore, start_ns: int, end_ns: int, **kw: Any) -> list[tuple[str, str, int, int]]:
    """(parent, child, calls, errors) in the window."""
    first, last = ceil_hour(start_ns), floor_hour(end_ns)
    rolled: list[Interval] = []
    if first < last:
        rows = await store.named("dependencies/final_hours", {
            "from_s": first // NS, "to_s": last // NS, "final_after_s": FINAL_AFTER_NS // NS}, **kw)
        rolled = runs([int(r[0]) * NS for r in rows])
    raw = gaps(start_ns, end_ns, rolled)
    parts = [store.named("dependencies/raw", {"start_ns": a, "end_ns": b}, **kw) for a, b in raw]
    if rolled:
        parts.append(store.named("dependencies/hourly", {"runs": [(a // NS, b // NS) for a, b in rolled]}, **kw))
    totals: dict[tuple[str, str], list[int]] = {}
    for rows in await asyncio.gather(*parts):
        for p, c, calls, errors in rows:
            t = totals.setdefault((p, c), [0, 0])
            t[0] += int(calls)
            t[1] += int(errors)
    return [(p, c, v[0], v[1]) for (p, c), v in sorted(totals.items())]
