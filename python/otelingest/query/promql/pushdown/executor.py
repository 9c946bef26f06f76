"""PromQL aggregations evaluated inside ClickHouse: the planner's plan (planner.py, plans.py) run.

The series catalog and the label matching stay in Python (Source.series), which also gives each
series its group; ClickHouse then evaluates the function per series and step and the aggregation
per group and step, with the Python evaluator's semantics (tests/query/test_query_promql_sql.py checks
both give the same answers). A plan's bounded stage that finds a window denser than it reads says
so with a row at step ``{steps}``; the next stage then runs, and that stage is skipped for this
metric a while (OVERFLOW_TTL_S). docs/promql.md ("Pushdown") tells which plan serves which panel.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import promql_parser as pp

from ....clickhouse import sqlfiles
from ...storage.tables import BUCKET_S
from .. import source
from ..source import Source
from ..values import Labels, Vector, label_key
from . import planner
from .plans import Stage
from .results import bucket_vector, combined, dense, vector

log = logging.getLogger(__name__)

# A metric whose windows overflowed a bounded stage goes straight to the next one for this long.
OVERFLOW_TTL_S = 600.0


class Evaluation(Protocol):
    """What the pushdown needs of an evaluation: where it reads, and at which steps."""

    source: Source
    steps: np.ndarray
    step_ns: int


async def aggregate(ev: Evaluation, a: pp.AggregateExpr) -> Vector | None:
    """The aggregation evaluated in ClickHouse, or None when the Python evaluator answers it."""
    src = ev.source
    shape = planner.shape(a, src.table, src.lookback_ns, ev.step_ns, len(ev.steps))
    if isinstance(shape, planner.Python):
        log.debug("%s: %s", a, shape.explain())
        return None
    e0 = int(ev.steps[0]) - shape.offset_ns
    start, end = e0 - shape.window_ns, int(ev.steps[-1]) - shape.offset_ns
    series = await src.series(list(shape.matchers), start, end)
    if not series:
        return Vector([])
    # Remote write's metrics are verbatim: before migration 0012 their rows (stale markers among
    # them) were otel_metrics rows; since, otel_prom_samples rows (narrow_series).
    otlp_only = not any(info.verbatim or sid in src.narrow_series for sid, info, _, _ in series)
    facts = planner.facts(shape, ((sid, kind, info.temporality == "Delta") for sid, info, kind, _ in series),
                          src.bounds_changed, otlp_only)
    chosen = planner.plan(shape, facts) if isinstance(facts, planner.Facts) else facts
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s", chosen.explain() if isinstance(chosen, planner.Plan) else f"{a}: {chosen.explain()}")
    if isinstance(chosen, planner.Python):
        return None
    facts = chosen.facts
    group_labels, gids = _groups(shape, [lab for _, _, _, lab in series])
    sids = [sid for sid, _, _, _ in series]
    bucket = facts.kind == "bucket"
    # Bounds travel as an id per series (the same throughout the window: checked by the planner).
    bound_ids: dict[tuple[float, ...], int] = {}
    bids = [bound_ids.setdefault(src.bounds_of.get(sid, ()), len(bound_ids)) for sid in sids] if bucket else []
    names = sorted({info.otel_name for _, info, _, _ in series})
    delta = int(facts.delta)
    params: dict[str, Any] = {
        "names": names, "series": sids, "groups": gids, "start_ns": start, "end_ns": end, "e0_ns": e0,
        "step_ns": ev.step_ns or 1, "steps": len(ev.steps), "delta": delta, "running": delta,
    }
    if bucket:
        params["bids"] = bids
    else:
        params["kind"] = facts.kind
    if src.table != "otel_metrics":
        params |= {"table": src.table, "bucket_s": BUCKET_S[src.table]}
    params |= {"fn": shape.fn, "range_ns": shape.window_ns} if shape.fn else {"lookback_ns": shape.window_ns}
    params |= chosen.params
    le_grouped = bucket and ((("le" in shape.names) if shape.by else ("le" not in shape.names)))

    for stage in chosen.stages:
        memo = ("promql_pushdown_overflow", chosen.name, stage.name, src.table, tuple(names), facts.kind, shape.window_ns)
        if stage.bounded and src.store.recall(memo):
            continue
        sql = "\n".join(sqlfiles.query(f) for f in chosen.fragments(stage))
        run = params | dict(stage.params)
        if bucket:
            rows = await _chunked(ev, sql, run)
            if _overflowed(stage, (int(r[2]) for r in rows), len(ev.steps)):
                src.store.remember(memo, True, OVERFLOW_TTL_S)
                continue
            return bucket_vector(rows, list(bound_ids), shape.op, le_grouped, len(ev.steps), group_labels)
        points = await _points(ev, sql, run, shape.op)
        if _overflowed(stage, (k for _, _, k in points), len(ev.steps)):
            src.store.remember(memo, True, OVERFLOW_TTL_S)
            continue
        return vector(dense(points, len(ev.steps)), group_labels, le_grouped)
    log.debug("%s: %s", a, chosen.exhausted)
    return None


def _overflowed(stage: Stage, steps_answered: Any, steps: int) -> bool:
    """Whether a bounded stage said a window held more than it reads (a row at step ``steps``)."""
    return bool(stage.bounded) and any(k >= steps for k in steps_answered)


def _groups(shape: planner.Shape, labels: list[Labels]) -> tuple[list[Labels], list[int]]:
    """Each group's labels, and each series' group index."""
    names = shape.names
    index: dict[tuple[tuple[str, str], ...], int] = {}
    group_labels: list[Labels] = []
    gids = []
    for lab in labels:
        if shape.by:
            g = {k: lab[k] for k in names if k in lab}
        else:
            g = {k: v for k, v in lab.items() if k not in names and k != "__name__"}
        key = label_key(g)
        if key not in index:
            index[key] = len(group_labels)
            group_labels.append(g)
        gids.append(index[key])
    return group_labels, gids


async def _points(ev: Evaluation, sql: str, params: dict[str, Any], op: str) -> dict[tuple[int, str, int], float]:
    """(group, step) values of a counter's or gauge's aggregation ``op``."""
    if len(params["series"]) <= source.MAX_BOUND_SERIES:
        return {(int(g), "", int(k)): v for g, k, v in await _chunked(ev, sql, params | {"agg": op})}
    # A group's value from its parts in each chunk of series (an average from sums and counts).
    parts = {o: combined(await _chunked(ev, sql, params | {"agg": o}), o)
             for o in (("sum", "count") if op == "avg" else (op,))}
    return parts[op] if op != "avg" else {key: v / parts["count"][key] for key, v in parts["sum"].items()}


async def _chunked(ev: Evaluation, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` over every series, a query per chunk of the series ids one parameter holds
    (ClickHouse takes 128 KiB): per group, bounds and step, a chunk's rows are the aggregation over
    its series."""
    rows: list[tuple[Any, ...]] = []
    n = source.MAX_BOUND_SERIES
    for lo in range(0, len(params["series"]), n):
        part = {k: (v[lo:lo + n] if k in ("series", "groups", "bids") else v) for k, v in params.items()}
        rows += await ev.source.store.rows(sql, part, request=ev.source.request)
    return rows
