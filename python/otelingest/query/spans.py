"""Spans as read by ``sql/queries/traces/spans.sql``, shared by the design's API and Jaeger."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from .storage.store import TenantStore

ZERO_SPAN_ID = "0" * 16


class Span(NamedTuple):
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    flags: int
    name: str
    kind: str
    service: str
    resource: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str
    event_times: list[int]
    event_names: list[str]
    event_attributes: list[dict[str, str]]
    link_trace_ids: list[str]
    link_span_ids: list[str]
    link_trace_states: list[str]
    link_attributes: list[dict[str, str]]
    resource_kinds: str = ""
    span_kinds: str = ""
    scope_attributes: dict[str, str] = {}

    @property
    def parent(self) -> str | None:
        return None if self.parent_span_id == ZERO_SPAN_ID else self.parent_span_id


# Newest-first search: the last minute of the window first, then 4x wider each pass (a busy
# service's minute holds thousands of traces; a quiet one costs a few more cheap passes).
FIRST_SLICE_NS = 60 * 1_000_000_000
# How far around now a trace read by id is looked for when its lookup row is not visible yet.
RECENT_NS = 15 * 60 * 1_000_000_000
WIDEN = 4


async def search_newest(store: TenantStore, name: str, params: dict[str, Any], **kw: Any) -> list[tuple]:
    """The ``limit`` traces whose newest matching span is latest in the window, reading the end of
    the window first and widening only while fewer than ``limit`` traces are found there.

    Exact: a trace's last match in the whole window is at or after the slice's start exactly when it
    has a match in the slice, where its maximum is the same; so once a slice holds ``limit`` traces,
    every trace outside it ranks below all of them. A service with many traces reads minutes, not
    the whole window (the search SQL groups every matching span of its window by trace).
    """
    start, end, limit = params["start_ns"], params["end_ns"], params["limit"]
    width = FIRST_SLICE_NS
    while True:
        lo = max(start, end - width)
        rows = await store.named(name, {**params, "start_ns": lo}, **kw)
        if len(rows) >= limit or lo == start:
            return rows
        width *= WIDEN


async def trace_windows(store: TenantStore, trace_ids: list[str], *, found_in: tuple[int, int] | None = None,
                        **kw: Any) -> dict[str, tuple[int, int]]:
    """Each trace's (first start, last end) from ``otel_trace_times``; a trace absent there is left
    out, or, given ``found_in`` (the window a search found the ids in), takes that window: a trace
    found in ``otel_traces`` may not be in the lookup yet (a view's part becomes visible after its
    source's), and is then read within the window it was found in rather than dropped."""
    rows = await store.named("traces/windows", {"trace_ids": trace_ids}, **kw)
    windows = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    if found_in is not None:
        windows.update({tid: found_in for tid in trace_ids if tid not in windows})
    return windows


async def fetch_trace(store: TenantStore, trace_id: str, **kw: Any) -> list[Span]:
    """One trace's spans by id. Absent from ``otel_trace_times`` (an INSERT's lookup part not
    visible yet), it is looked for within RECENT_NS of now: a trace sent a moment ago is
    answered, an unknown id costs one small read more."""
    now = time.time_ns()
    found = await fetch_traces(store, [trace_id], found_in=(now - RECENT_NS, now + RECENT_NS), **kw)
    return found.get(trace_id, [])


async def fetch_traces(store: TenantStore, trace_ids: list[str], *, found_in: tuple[int, int] | None = None,
                       **kw: Any) -> dict[str, list[Span]]:
    """Spans of each trace (upper-case hex ids), reading only the traces' windows (``found_in``:
    see ``trace_windows``)."""
    if not trace_ids:
        return {}
    windows = await trace_windows(store, trace_ids, found_in=found_in, **kw)
    if not windows:
        return {}
    start = min(w[0] for w in windows.values())
    end = max(w[1] for w in windows.values())
    rows = await store.named(
        "traces/spans", {"trace_ids": list(windows), "start_ns": start, "end_ns": end}, **kw
    )
    out: dict[str, list[Span]] = {}
    for r in rows:
        s = Span(*r)
        out.setdefault(s.trace_id, []).append(s)
    return out
