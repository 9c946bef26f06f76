"""TraceQL metrics (``/api/metrics/query_range`` and ``/api/metrics/query``).

``{filter} | rate() | count_over_time() | min/max/avg/sum_over_time(x) | quantile_over_time(x, q...)
| histogram_over_time(x)`` with an optional ``by(...)``. Two plans:

- the hourly rollup ``otel_span_stats_1h`` when the shape allows: the filter is a conjunction of
  comparisons on ``resource.service.name``, ``name`` and ``kind`` (and ``status = error`` for
  rate/count), ``by()`` uses only those, the argument is ``duration`` (min/max/avg, quantiles
  0.5/0.95/0.99 from the rollup's t-digests), and the step is whole hours, or the range is longer
  than :data:`ROLLUP_AUTO_RANGE_NS`, where the step is raised to an hour: a 30-day panel reads a
  few hundred rows per series;
- raw spans otherwise (sql/queries/tempo/metrics_raw.sql), in which quantiles come from log2
  histograms as Tempo computes them.

Series are Tempo's ``QueryRangeResponse``: ``labels`` (by() values, or ``__name__`` = the
function), ``samples`` ``{timestampMs, value}`` at each step's start, ``promLabels``; quantiles add
the label ``p``, histograms ``__bucket`` (upper bound, seconds for durations). Durations are in
seconds. Structural operators, pipelines before the function and trace-level intrinsics are 400.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from ..common import check_points, check_window, now_ns, store_of
from ..tenant import limits_of
from ..errors import BadRequest
from ..timeparse import NS, duration_ns, loki_time_ns
from .parser import And, Attr, Cmp, Filter, Intrinsic, Lit, Metrics, Operand, parse
from .planner import TRACE_LEVEL, Planner, operands_of
from .spansets import check_regexes

HOUR_NS = 3600 * NS
ROLLUP_AUTO_RANGE_NS = 48 * HOUR_NS
ROLLUP_QUANTILES = (0.5, 0.95, 0.99)
DEFAULT_RANGE_NS = HOUR_NS
MIN_STEP_NS = NS
COUNT_FUNCS = ("rate", "count_over_time")


def _rollup_operand(o: Operand) -> bool:
    return (isinstance(o, Attr) and o.scope == "resource" and o.name == "service.name") or \
        (isinstance(o, Intrinsic) and o.name in ("name", "kind"))


def _conjuncts(e: Any) -> list[Any]:
    if e is None:
        return []
    if isinstance(e, And):
        return _conjuncts(e.lhs) + _conjuncts(e.rhs)
    return [e]


def rollup_plan(m: Metrics, expr: Any) -> tuple[list[Cmp], bool] | None:
    """The filter's comparisons and whether it counts errors only, if the rollup can answer."""
    if any(not _rollup_operand(o) for o in m.by):
        return None
    if m.func in COUNT_FUNCS:
        pass
    elif m.func in ("min_over_time", "max_over_time", "avg_over_time") or \
            (m.func == "quantile_over_time" and all(q in ROLLUP_QUANTILES for q in m.quantiles)):
        if m.arg != Intrinsic("duration"):
            return None
    else:
        return None
    cmps, errors = [], False
    for c in _conjuncts(expr):
        if not isinstance(c, Cmp):
            return None
        if c.lhs == Intrinsic("status") and c.op == "=" and c.rhs == Lit("status", "error") and m.func in COUNT_FUNCS:
            if errors:
                return None
            errors = True
        elif _rollup_operand(c.lhs):
            cmps.append(c)
        else:
            return None
    return cmps, errors


def _time(q: Any, name: str) -> int | None:
    raw = q.get(name)
    return loki_time_ns(raw, name) if raw else None


def _labels(m: Metrics, key: tuple[Any, ...]) -> list[tuple[str, Any]]:
    if not m.by:
        return [("__name__", m.func)]
    return [(o.label(), v) for o, v in zip(m.by, key)]


def _json_label(name: str, v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"key": name, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": name, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": name, "value": {"doubleValue": v}}
    return {"key": name, "value": {"stringValue": str(v)}}


def _prom(labels: list[tuple[str, Any]]) -> str:
    return "{" + ", ".join(f'{k}="{str(v).lower() if isinstance(v, bool) else v}"' for k, v in labels) + "}"


def _key_values(grp: Any) -> tuple[Any, ...]:
    """by() group values from value tuples (exists, text, kind): typed as Tempo shows them."""
    out: list[Any] = []
    for exists, text, kind in grp:
        try:
            if not exists:
                out.append("nil")
            elif kind == "i":
                out.append(int(text))
            elif kind == "d":
                out.append(float(text))
            elif kind == "b":
                out.append(text == "true")
            else:
                out.append(text)
        except ValueError:  # text that is not what its kind says: shown as text
            out.append(text)
    return tuple(out)


def _log2_quantile(p: float, buckets: dict[float, int]) -> float:
    """Tempo's quantile over log2 buckets: the bucket holding the rank, interpolated within it."""
    total = sum(buckets.values())
    if not total:
        return math.nan
    rank = p * total
    seen = 0
    for upper in sorted(buckets):
        n = buckets[upper]
        if seen + n >= rank and n:
            lower = upper / 2 if upper > 0 else 0.0
            return lower + (upper - lower) * ((rank - seen) / n)
        seen += n
    return max(buckets)


async def query_range(request: Request, *, instant: bool) -> dict[str, Any]:
    q = request.query_params
    if not q.get("q"):
        raise BadRequest("q: a TraceQL metrics query is required")
    query = parse(q["q"])
    m = query.metrics
    if m is None:
        raise BadRequest("TraceQL: not a metrics query (expected e.g. `{ } | rate()`)")
    if not isinstance(query.spansets, Filter):
        raise BadRequest("TraceQL metrics: spanset operators (&&, ||, structural) are not supported")
    if query.stages:
        raise BadRequest("TraceQL metrics: pipeline stages before the metrics function are not supported")
    expr = query.spansets.expr
    if any(isinstance(o, Intrinsic) and o.name in TRACE_LEVEL for o in operands_of(expr)):
        raise BadRequest("TraceQL metrics: trace-level intrinsics (rootName, rootServiceName, traceDuration) "
                         "are not supported")
    await check_regexes(store_of(request), [expr], request=request)
    end = _time(q, "end") or now_ns()
    since = q.get("since")
    start = _time(q, "start") or end - (duration_ns(since, "since") if since else DEFAULT_RANGE_NS)
    limits = limits_of(request)
    check_window(start, end, limits)
    if instant:
        step = max(end - start, MIN_STEP_NS)
    elif q.get("step"):
        step = max(duration_ns(q["step"], "step"), MIN_STEP_NS)
    else:  # Tempo's default: about a hundred points
        step = max((end - start) // 100 // NS * NS, MIN_STEP_NS)
    plan = rollup_plan(m, expr)
    use_rollup = plan is not None and not instant and (step % HOUR_NS == 0 or end - start > ROLLUP_AUTO_RANGE_NS)
    if use_rollup:
        step = max(step // HOUR_NS, 1) * HOUR_NS
    origin = start if instant else start // step * step
    n_steps = max(1, -(-(end - origin) // step))
    check_points(n_steps, limits)
    store = store_of(request)
    p = Planner()
    groups = p.frag("empty_tuple")
    if m.by:
        if any(isinstance(o, Attr) and o.scope in ("event", "link") for o in m.by):
            raise BadRequest("TraceQL metrics: by() event or link attributes is not supported")
        groups = p.frag("tuple_of", A=p.join([p.value_tuple(o) for o in m.by]))
    series: dict[tuple[Any, ...], dict[int, Any]] = {}
    if use_rollup:
        assert plan is not None
        cmps, errors = plan
        cond = p.frag("true")
        for c in cmps:
            cond = p.frag("and", A=cond, B=p.cmp(c))
        sql = p.query("tempo/metrics_rollup", GROUPS=groups, FILTER=cond)
        rows = await store.rows(sql, {**p.params, "origin_ns": origin, "step_ns": step, "start_ns": origin,
                                      "end_ns": end}, request=request)
        for bucket, grp, spans, errs, dsum, dmin, dmax, quants in rows:
            count = errs if errors else spans
            if not count:  # a group without matching spans is no series, as from raw spans
                continue
            value = _rollup_value(m, count, dsum, dmin, dmax, quants, step)
            for extra, v in value:
                series.setdefault((_key_values(grp), extra), {})[int(bucket)] = v
    else:
        if m.func not in COUNT_FUNCS and m.arg is None:
            raise BadRequest(f"TraceQL metrics: {m.func} needs an argument")
        hist = m.func in ("quantile_over_time", "histogram_over_time")
        if m.arg == Intrinsic("duration"):
            value_sql, bucket_sql = p.frag("duration_seconds"), p.frag("duration_bucket" if hist else "no_bucket")
        elif m.arg is None:
            value_sql, bucket_sql = p.frag("null_value"), p.frag("no_bucket")
        elif isinstance(m.arg, Intrinsic) and m.arg.name != "duration":
            raise BadRequest(f"TraceQL metrics: {m.func}({m.arg.name}) is not supported (numeric attributes or duration)")
        else:
            if isinstance(m.arg, Attr) and m.arg.scope in ("event", "link"):
                raise BadRequest("TraceQL metrics: event or link attributes as the argument are not supported")
            exists, text, kind = p.source(m.arg)
            value_sql = p.frag("numeric_value", EXISTS=exists, TEXT=text, KIND=kind)
            bucket_sql = p.frag("value_bucket" if hist else "no_bucket")
        cond = p.cond(expr, False, True)
        sql = p.query("tempo/metrics_raw", GROUPS=groups, VALUE=value_sql, BUCKET=bucket_sql, FILTER=cond)
        rows = await store.rows(sql, {**p.params, "origin_ns": origin, "step_ns": step, "start_ns": origin,
                                      "end_ns": end, "histogram": hist}, request=request)
        for bucket, grp, spans, n, vmin, vmax, vsum, histo in rows:
            for extra, v in _raw_value(m, spans, n, vmin, vmax, vsum, histo, step):
                series.setdefault((_key_values(grp), extra), {})[int(bucket)] = v
    return _response(m, series, origin, step, n_steps, instant)


def _rollup_value(m: Metrics, count: int, dsum: int, dmin: int, dmax: int, quants: list[float],
                  step: int) -> list[tuple[tuple[tuple[str, Any], ...], float]]:
    if m.func == "rate":
        return [((), count / (step / NS))]
    if m.func == "count_over_time":
        return [((), float(count))]
    if not count:
        return []
    if m.func == "min_over_time":
        return [((), dmin / NS)]
    if m.func == "max_over_time":
        return [((), dmax / NS)]
    if m.func == "avg_over_time":
        return [((), dsum / count / NS)]
    return [((("p", q),), quants[ROLLUP_QUANTILES.index(q)] / NS) for q in m.quantiles]


def _raw_value(m: Metrics, spans: int, n: int, vmin: Any, vmax: Any, vsum: Any, histo: tuple[list[float], list[int]],
               step: int) -> list[tuple[tuple[tuple[str, Any], ...], float]]:
    if m.func == "rate":
        return [((), spans / (step / NS))]
    if m.func == "count_over_time":
        return [((), float(spans))]
    if not n:
        return []
    if m.func == "min_over_time":
        return [((), float(vmin))]
    if m.func == "max_over_time":
        return [((), float(vmax))]
    if m.func == "avg_over_time":
        return [((), float(vsum) / n)]
    if m.func == "sum_over_time":
        return [((), float(vsum))]
    buckets = {float(k): int(v) for k, v in zip(*histo) if v}
    if m.func == "histogram_over_time":
        return [((("__bucket", b),), float(c)) for b, c in sorted(buckets.items())]
    return [((("p", q),), _log2_quantile(q, buckets)) for q in m.quantiles]


def _response(m: Metrics, series: dict[tuple[Any, ...], dict[int, Any]], origin: int, step: int, n_steps: int,
              instant: bool) -> dict[str, Any]:
    out = []
    for (key, extra), points in sorted(series.items(), key=lambda kv: str(kv[0])):
        labels = _labels(m, key) + list(extra)
        entry: dict[str, Any] = {"labels": [_json_label(k, v) for k, v in labels], "promLabels": _prom(labels)}
        if instant:
            total = [v for v in points.values() if not math.isnan(v)]
            if not total:
                continue
            entry["value"] = total[0]
        else:
            fill = m.func in COUNT_FUNCS or m.func == "histogram_over_time"
            samples = []
            for b in range(n_steps):
                v = points.get(b, 0.0 if fill else None)
                if v is None or math.isnan(v):
                    continue
                samples.append({"timestampMs": str((origin + b * step) // 1_000_000), "value": v})
            entry["samples"] = samples
        out.append(entry)
    return {"series": out, "metrics": {"completedJobs": 1, "totalJobs": 1}}
