"""PromQL aggregations evaluated inside ClickHouse.

The shapes Grafana panels are made of: ``sum|avg|min|max|count [by|without (...)] (X)`` where X is a
selector or ``rate|increase|delta|{sum,avg,min,max,count,last}_over_time(selector[range])``, also
inside ``histogram_quantile``. For them the Python evaluator would fetch every series' samples (or
per-bucket aggregates) and evaluate per series: over 24 hours that is a million rows moved and
decoded for an answer of a few hundred points. Here the series catalog and the label matching stay
in Python (promql.Source.series), which also gives each series its group; ClickHouse then evaluates
the function per series and step and the aggregation per group and step
(sql/queries/prom_agg_*.sql), with the Python evaluator's semantics: the same samples, running totals
for delta temporality, Prometheus' extrapolated rate and 5-minute lookback, absent and NaN values
skipped. tests/query/test_query_promql_sql.py checks both give the same answers.

A histogram's rate over a window of several steps (Grafana's `rate(x_bucket[5m])` at a one-minute
step) would copy each point's array to every window holding it. Instead, when windows hold at most
five samples, each window's first sample is read with a lag from its last one
(prom_agg_lags.sql): 24 hours of raw points at a one-minute step in 0.25 s (delta) or 0.33 s
(cumulative) of SQL instead of 3-7 s. Denser windows pair each window's last sample with its first
(prom_agg_prefix_windows_buckets.sql: `rate(x_bucket[1h])` at a one-minute step over 24 h in about
0.5 s instead of 7-8 s); delta points stored twice sum each sample's increment into the windows
holding it and its predecessor, sharing a point between its copies (prom_agg_neighbours_buckets.sql,
prom_agg_increments_buckets.sql).
A counter's or gauge's windows of up to eight samples are read with lags the same way when there
are enough windows to pay for its planning: 0.2 s instead of 0.25 s for
`sum by (x) (rate(c[414s]))` at a one-minute step over a million points; denser or fewer windows
copy each sample to the windows holding it (prom_agg_windows.sql).

Anything else (irate, topk, ``le`` matchers, selections mixing a histogram's families or
temporalities, min/max or ``*_over_time`` of ``_bucket`` series, a histogram whose bounds change in
the window, windows much longer than the step) returns None and the Python evaluator answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import promql_parser as pp

from ..clickhouse import sqlfiles
from .tables import BUCKET_S

if TYPE_CHECKING:
    from .promql import Evaluator, Labels, Vector

T = TypeVar("T")

AGGS = frozenset({"sum", "avg", "min", "max", "count"})
RANGE_FUNCS = frozenset({"rate", "increase", "delta", "sum_over_time", "avg_over_time", "min_over_time",
                         "max_over_time", "count_over_time", "last_over_time"})
# A histogram's buckets travel as one array per point: element-wise sums only.
BUCKET_AGGS = frozenset({"sum", "avg", "count"})
BUCKET_FUNCS = frozenset({"", "rate", "increase", "delta"})
PAIR_FUNCS = frozenset({"rate", "increase", "delta"})
# Each sample is copied to every step whose window holds it: beyond this many copies the Python
# evaluator's per-bucket path moves fewer rows.
MAX_COPIES = 64
# From this many copies of each sample on, reading each window's first sample with a lag
# (prom_agg_lags.sql) or pairing its ends (prom_agg_prefix_windows_buckets.sql) beats
# copying: measured over 24 h of raw points, rate[5m] at a one-minute step took 0.3 s either way and
# 6.5 s copying; at a five-minute step (one or two copies) copying is as fast.
INCREMENTS_MIN_COPIES = 3
FRAME_MAX_RANGE_MS = 2**31 - 1  # window frames take RANGE offsets below 2^31 (in milliseconds at most)
# A counter's lagged path takes 20 ms more to plan than the copying path (more expressions): it pays
# from a few hundred thousand windows (series x steps) on. rate(c[414s]) over points 138 s apart,
# whole evaluation, lagged vs copying: 16 series x 1,441 steps 70 vs 49 ms; 1,600 x 61 75 vs 57;
# 160 x 1,441 100 vs 95; 1,600 x 241 93 vs 117; 1,600 x 361 129 vs 129; 1,600 x 1,441 233 vs 282.
LAGGED_MIN_WINDOWS = 300_000
# A metric whose windows hold more samples than the lagged path reads (or with delta points stored
# twice) takes the path after it directly for this long.
DENSE_TTL_S = 600.0


def _unwrap(e: Any) -> Any:
    while isinstance(e, pp.ParenExpr):
        e = e.expr
    return e


async def aggregate(ev: "Evaluator", a: pp.AggregateExpr) -> "Vector | None":
    """The aggregation evaluated in ClickHouse, or None when its shape is not one handled here."""
    from . import promql

    op = str(a.op)
    if op not in AGGS:
        return None
    by, names = True, []
    if a.modifier is not None:
        by = "Without" not in str(a.modifier.type)
        names = list(a.modifier.labels)
    if "__name__" in names:
        return None
    inner = _unwrap(a.expr)
    fn = ""
    if isinstance(inner, pp.Call) and inner.func.name in RANGE_FUNCS and len(inner.args) == 1 \
            and isinstance(inner.args[0], pp.MatrixSelector):
        fn = inner.func.name
        vs = inner.args[0].vector_selector
        window = promql._td(inner.args[0].range)
        if window <= 0:
            return None
        # As the Python evaluator does: a rollup window holds at least two of its buckets.
        window = max(window, 2 * BUCKET_S[ev.source.table] * promql.NS)
    elif isinstance(inner, pp.VectorSelector):
        vs = inner
        window = ev.source.lookback_ns
    else:
        return None
    if vs.at is not None:
        return None
    matchers = promql.matchers_of(vs)
    if any(m.name == "le" for m in matchers):
        return None
    step = ev.step_ns or 1
    # Copying paths copy each sample to every window holding it: beyond MAX_COPIES they decline (the
    # lagged and prefix paths of rate/increase/delta copy nothing).
    copies = window // ev.step_ns if ev.step_ns else 1
    if copies > MAX_COPIES and fn not in PAIR_FUNCS:
        return None
    offset = promql._td(vs.offset)
    e0 = int(ev.steps[0]) - offset
    start, end = e0 - window, int(ev.steps[-1]) - offset
    series = await ev.source.series(matchers, start, end)
    kinds = {kind for _, _, kind, _ in series}
    if len(kinds) > 1 or len({sid for sid, _, _, _ in series}) != len(series):
        return None  # a histogram's families side by side: per-family handling in Python
    # One temporality per query, so ClickHouse computes running totals only for delta series.
    deltas = {info.temporality == "Delta" for _, info, _, _ in series}
    if len(deltas) > 1:
        return None
    if not series:
        return promql.Vector([])
    kind = kinds.pop()
    if kind == "bucket" and (op not in BUCKET_AGGS or fn not in BUCKET_FUNCS):
        return None
    if kind == "bucket" and any(sid in ev.source.bounds_changed for sid, _, _, _ in series):
        return None  # bounds changed within the window: each `le` followed across it in Python

    def group_of(lab: "Labels") -> "Labels":
        if by:
            return {k: lab[k] for k in names if k in lab}
        return {k: v for k, v in lab.items() if k not in names and k != "__name__"}

    le_grouped = kind == "bucket" and (("le" in names) if by else ("le" not in names))
    groups: dict[tuple[tuple[str, str], ...], int] = {}
    group_labels: list["Labels"] = []
    sids, gids = [], []
    for sid, _, _, lab in series:
        g = group_of(lab)
        key = promql._key(g)
        if key not in groups:
            groups[key] = len(group_labels)
            group_labels.append(g)
        sids.append(sid)
        gids.append(groups[key])
    raw = ev.source.table == "otel_metrics"
    bucket = kind == "bucket"
    # Bounds travel as an id per series (the same throughout the window: checked above).
    bound_ids: dict[tuple[float, ...], int] = {}
    bids = [bound_ids.setdefault(ev.source.bounds_of.get(sid, ()), len(bound_ids)) for sid in sids] if bucket else []
    params: dict[str, Any] = {
        "names": sorted({info.otel_name for _, info, _, _ in series}), "series": sids, "groups": gids,
        "start_ns": start, "end_ns": end, "e0_ns": e0, "step_ns": step, "steps": len(ev.steps),
        "delta": int(deltas.pop()) if deltas else 0,
    }
    if bucket:
        params["bids"] = bids
    params["running"] = params["delta"]
    if not raw:
        params |= {"table": ev.source.table, "bucket_s": BUCKET_S[ev.source.table]}
    params |= {"fn": fn, "range_ns": window} if fn else {"lookback_ns": window}
    arrays = "_buckets" if bucket else ""
    # A metric found too dense for the lagged paths below, or with delta points stored twice, goes
    # straight to the paths after them a while.
    dense_key = ("prom_dense", ev.source.table, tuple(params["names"]), kind, window)
    twins_key = ("prom_delta_twins", *dense_key[1:])
    fragments = [f"prom_agg_samples_{'raw' if raw else 'rollup'}{'_bucket' if bucket else ''}"]
    # A histogram's windows end in their extrapolation, per element only where a window's counter may
    # start inside it (cumulative rate/increase).
    ranged = (["prom_agg_extrapolation_buckets",
               "prom_agg_range_linear_buckets" if params["delta"] or fn == "delta" else "prom_agg_range_buckets"]
              if bucket else ["prom_agg_range"])
    if not fn:
        fragments += ["prom_agg_latest", f"prom_agg_instant{arrays}"]
    elif fn not in PAIR_FUNCS:
        fragments.append("prom_agg_over_time")
    elif not raw and window == 2 * BUCKET_S[ev.source.table] * promql.NS:
        # Rollup samples are a bucket apart: a two-bucket window holds the last sample and the one
        # before, so the previous row is all a step needs (no aggregation per series and step).
        fragments += ["prom_agg_pairs", f"prom_agg_windows{arrays}_pairs", *ranged]
        params["running"] = 0  # the pair's growth is the last delta: no running total needed
    elif bucket and copies >= INCREMENTS_MIN_COPIES and window <= FRAME_MAX_RANGE_MS * 1_000_000:
        # A window spanning several steps: copying each sample's array to every window holding it
        # is what costs. Few samples per window (the usual panel): each window's first sample is
        # read with a lag (prom_agg_lags.sql); more: each window's two ends are paired
        # (prom_agg_prefix_windows_buckets.sql); delta points stored twice: each sample's increment
        # is added to the windows holding it and its predecessor (prom_agg_increments_buckets.sql).
        unit = 1_000 if -(-window // 1_000) <= FRAME_MAX_RANGE_MS else 1_000_000
        params |= {"unit_ns": unit, "range_units": -(-window // unit), "running": 0}
        delta = bool(params["delta"])
        rows = await _first_whole(ev, [
            (dense_key, ["prom_agg_lags",
                         "prom_agg_lagged_firsts_delta_buckets" if delta else "prom_agg_lagged_firsts_buckets",
                         "prom_agg_lagged_windows_buckets"], params | {"lags": 4}),
            # Denser windows: each window's last value minus its first (plus the values before
            # resets inside it), about five rows per sample however long the window.
            (twins_key, ["prom_agg_prefix_ends", "prom_agg_prefix_windows_buckets"], params | {"running": int(delta)}),
        ], fragments, ranged, lambda sql, p: _chunked(ev, sql, p), lambda rows: (int(r[2]) for r in rows))
        if rows is not None:
            return _bucket_vector(rows, list(bound_ids), op, le_grouped, len(ev.steps), group_labels)
        # Delta points stored twice: the increments path shares them between their copies.
        if copies > MAX_COPIES:
            return None
        fragments += ["prom_agg_neighbours_buckets", "prom_agg_increments_buckets", "prom_agg_range_increments_buckets"]
    elif not bucket and copies >= INCREMENTS_MIN_COPIES and (len(sids) * len(ev.steps) >= LAGGED_MIN_WINDOWS
                                                             or copies > MAX_COPIES):
        # The same for a counter or gauge: each window's first sample read with a lag
        # (prom_agg_lags.sql), or its two ends paired (prom_agg_prefix_windows.sql), instead of each
        # sample copied to every window holding it.
        p = params | {"kind": kind}
        points = await _first_whole(ev, [(dense_key, ["prom_agg_lags", "prom_agg_lagged_windows"], p | {"lags": 7}),
                                         (twins_key, ["prom_agg_prefix_ends", "prom_agg_prefix_windows"], p)],
                                    fragments, ranged, lambda sql, q: _points(ev, sql, q, op),
                                    lambda points: (k for _, _, k in points))
        if points is not None:
            return _vector(_dense(points, len(ev.steps)), group_labels, le_grouped)
        if copies > MAX_COPIES:
            return None
        fragments += ["prom_agg_ordered", "prom_agg_windows", *ranged]
    elif copies > MAX_COPIES:
        return None
    else:
        fragments += ["prom_agg_ordered", f"prom_agg_windows{arrays}", *ranged]
    sql = "\n".join(sqlfiles.query(f) for f in fragments)
    if bucket:
        rows = await _chunked(ev, sql, params)
        return _bucket_vector(rows, list(bound_ids), op, le_grouped, len(ev.steps), group_labels)
    points = await _points(ev, sql, params | {"kind": kind}, op)
    return _vector(_dense(points, len(ev.steps)), group_labels, le_grouped)


async def _first_whole(ev: "Evaluator", attempts: list[tuple[tuple[Any, ...], list[str], dict[str, Any]]],
                       head: list[str], tail: list[str], run: Callable[[str, dict[str, Any]], Awaitable[T]],
                       steps_of: Callable[[T], Iterable[int]]) -> T | None:
    """The result of the first of ``attempts`` (the key that remembers it failed, its fragments
    between ``head`` and ``tail``, its parameters) whose query has no row at step {steps}: such a
    row says a window was more than that path reads, and the key skips the path for DENSE_TTL_S."""
    for key, fragments, params in attempts:
        if ev.source.store.recall(key):
            continue
        out = await run("\n".join(sqlfiles.query(f) for f in head + fragments + tail), params)
        if all(k < len(ev.steps) for k in steps_of(out)):
            return out
        ev.source.store.remember(key, True, DENSE_TTL_S)
    return None


async def _points(ev: "Evaluator", sql: str, params: dict[str, Any], op: str) -> dict[tuple[int, str, int], float]:
    """(group, step) values of a counter's or gauge's aggregation ``op``."""
    from . import promql

    if len(params["series"]) <= promql.MAX_BOUND_SERIES:
        return {(int(g), "", int(k)): v for g, k, v in await _chunked(ev, sql, params | {"agg": op})}
    # A group's value from its parts in each chunk of series (an average from sums and counts).
    parts = {o: _combined(await _chunked(ev, sql, params | {"agg": o}), o)
             for o in (("sum", "count") if op == "avg" else (op,))}
    return parts[op] if op != "avg" else {key: v / parts["count"][key] for key, v in parts["sum"].items()}


async def _chunked(ev: "Evaluator", sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` over every series, a query per chunk of the series ids one parameter holds
    (ClickHouse takes 128 KiB): per group, bounds and step, a chunk's rows are the aggregation over
    its series."""
    from . import promql

    rows: list[tuple[Any, ...]] = []
    n = promql.MAX_BOUND_SERIES
    for lo in range(0, len(params["series"]), n):
        part = {k: (v[lo:lo + n] if k in ("series", "groups", "bids") else v) for k, v in params.items()}
        rows += await ev.source.store.rows(sql, part, request=ev.source.request)
    return rows


def _combined(rows: list[tuple[Any, ...]], op: str) -> dict[tuple[int, str, int], float]:
    """(group, step) values of one aggregation over several chunks' rows."""
    out: dict[tuple[int, str, int], float] = {}
    for g, k, v in rows:
        key = (int(g), "", int(k))
        if key not in out:
            out[key] = v
        elif op in ("sum", "count"):
            out[key] += v
        else:
            out[key] = min(out[key], v) if op == "min" else max(out[key], v)
    return out


def _bucket_vector(rows: list[tuple[Any, ...]], bounds_by_id: list[tuple[float, ...]], op: str, le_grouped: bool,
                   steps: int, group_labels: list["Labels"]) -> "Vector":
    return _vector(_per_le(rows, bounds_by_id, op, le_grouped, steps), group_labels, le_grouped)


def _vector(values: dict[tuple[int, str], np.ndarray], group_labels: list["Labels"], le_grouped: bool) -> "Vector":
    from . import promql

    out = []
    for (gid, le), arr in sorted(values.items()):
        lab = dict(group_labels[gid])
        if le_grouped:
            lab["le"] = le
        out.append((lab, arr))
    return promql.Vector(out)


def _dense(points: dict[tuple[int, str, int], float], steps: int) -> dict[tuple[int, str], np.ndarray]:
    """(group, le, step) -> value as one array over the steps per (group, le), NaN where absent."""
    out: dict[tuple[int, str], np.ndarray] = {}
    for (gid, le, k), v in points.items():
        arr = out.get((gid, le))
        if arr is None:
            arr = out[(gid, le)] = np.full(steps, np.nan)
        arr[k] = v
    return out


def _per_le(rows: list[tuple[Any, ...]], bounds_by_id: list[tuple[float, ...]], op: str, le_grouped: bool,
            steps: int) -> dict[tuple[int, str], np.ndarray]:
    """Element-wise sums per (group, bounds id, step) combined per `le` (sum, avg or count), as one
    array over the steps per (group, le), NaN where absent."""
    from .promql import format_le

    les_by_id = [[format_le(float(b)) for b in bounds] + ["+Inf"] for bounds in bounds_by_id]
    # Per (group, bounds id): each step's series count and element-wise sums, filled row by row.
    per: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for gid, bid, k, n, sums in rows:
        key = (int(gid), int(bid))
        if key not in per:
            per[key] = (np.zeros(steps), np.zeros((steps, len(les_by_id[key[1]]))))
        per[key][0][k] += n
        per[key][1][k] += sums
    # Then per (group, le): series with other bounds may share an `le`.
    acc: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    for (gid, bid), (counts, sums_) in per.items():
        for j, le in enumerate(les_by_id[bid]):
            key2 = (gid, le if le_grouped else "")
            if key2 not in acc:
                acc[key2] = (np.zeros(steps), np.zeros(steps))
            acc[key2][0][:] += counts
            acc[key2][1][:] += sums_[:, j]
    out = {}
    for key2, (n_, total) in acc.items():
        value = {"count": n_, "sum": total, "avg": total / np.where(n_ > 0, n_, 1)}[op].astype(np.float64)
        out[key2] = np.where(n_ > 0, value, np.nan)
    return out
