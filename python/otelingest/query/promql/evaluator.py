"""The PromQL evaluator: an expression tree evaluated at every step, with Prometheus' semantics (5m
lookback, extrapolated rate, bucketQuantile), over the samples :mod:`.source` reads.

Selectors read samples (or, with steps and ranges of a minute or more, per-bucket aggregates:
:mod:`.buckets`) of the series their matchers select; functions (:mod:`.ranges`,
:mod:`.functions`, :mod:`.quantiles`), aggregations (:mod:`.aggregations`) and operators
(:mod:`.operators`) then evaluate per step. Aggregations of the shapes Grafana panels use run
whole in ClickHouse instead when the pushdown planner has a plan for them (:mod:`.pushdown`); this
evaluator answers everything else and is their reference. On rollups a range window is at least two
buckets. Delta temporality is exposed as a running total from the fetched window's start; rate()
does not extrapolate such a total to zero.

Selectors and subqueries take offset and the @ modifier (a fixed evaluation time: its windows end
there at every step; start() and end() are the query's). A NaN sample is a value (values.py):
aggregations and range functions treat it as Prometheus does. What is not supported is a 400
``bad_data``, never a wrong answer; docs/promql.md lists it.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Iterator

import numpy as np
import promql_parser as pp

from ..errors import BadRequest, Unprocessable
from ..storage.store import TenantStore
from ..storage.tables import BUCKET_S, choose_metrics_table
from ..timeparse import NS
from . import functions as fx
from .aggregations import AGGREGATIONS, count_values, topk
from .buckets import NeedRaw, bucketed
from .matchers import matchers_of
from .operators import ARITH, CMP, apply_op, group_binary, matching, set_op, signature, vector_scalar
from .parse import at_ns, nanos
from .pushdown import executor as pushdown
from .quantiles import histogram_quantile_of
from .ranges import RANGE_FUNCS, last_nonempty, range_over_buckets, range_over_samples, value_nans
from .source import LOOKBACK_NS, Source
from .values import (STALE_NAN_BITS, Labels, Matrix, Samples, Scalar, Vector, check_unique, drop_name, keep_nan,
                     label_key, present, scalar_values, sort_by_value, without_stale)

# Buckets narrower than this gain little over raw samples (typical scrape/export intervals are 10-60 s).
MIN_BUCKET_NS = 60 * NS
SUBQUERY_DEFAULT_STEP_NS = 60 * NS


def _clamped(offset_ns: int) -> int:
    """An offset within what int64 step times take: beyond 146 years either way nothing is stored."""
    return max(-(2**62), min(offset_ns, 2**62))


class Evaluator:
    def __init__(self, source: Source, steps: np.ndarray, step_ns: int = 0, start_ns: int | None = None,
                 end_ns: int | None = None) -> None:
        self.source = source
        self.steps = steps  # int64 ns
        self.step_ns = step_ns  # 0 for an instant query
        # The query's start and end (@ start(), @ end()), also inside subqueries.
        self.start_ns = int(steps[0]) if start_ns is None else start_ns
        self.end_ns = int(steps[-1]) if end_ns is None else end_ns

    async def eval(self, e: Any) -> Vector | Scalar | Matrix:
        if isinstance(e, pp.NumberLiteral):
            return Scalar(np.full(len(self.steps), float(e.val)))
        if isinstance(e, pp.ParenExpr):
            return await self.eval(e.expr)
        if isinstance(e, pp.UnaryExpr):
            v = await self.eval(e.expr)
            if isinstance(v, Scalar):
                return Scalar(-v.values)  # a scalar has no absent steps
            if isinstance(v, Vector):
                return Vector([(drop_name(lab), keep_nan(-vals, present(vals))) for lab, vals in v.series])
            raise BadRequest("unary minus needs a scalar or instant vector")
        if isinstance(e, pp.VectorSelector):
            return await self.selector(e)
        if isinstance(e, pp.MatrixSelector):
            raise BadRequest("a range vector must be an argument of a function such as rate()")
        if isinstance(e, pp.Call):
            return await self.call(e)
        if isinstance(e, pp.AggregateExpr):
            return await self.aggregate(e)
        if isinstance(e, pp.BinaryExpr):
            return await self.binary(e)
        if isinstance(e, pp.StringLiteral):
            raise BadRequest("unsupported: string literal as an expression")
        if isinstance(e, pp.SubqueryExpr):
            raise BadRequest("a subquery's range vector must be an argument of a function such as max_over_time()")
        raise BadRequest(f"unsupported expression: {type(e).__name__}")

    def _times(self, at: Any) -> np.ndarray:
        """The evaluation times of a selector or subquery: the steps, or its ``@`` time at each."""
        if at is None:
            return self.steps
        return np.full(len(self.steps), at_ns(at, self.start_ns, self.end_ns), dtype=np.int64)

    async def _fetch(self, vs: pp.VectorSelector, window_ns: int) -> tuple[list[Samples], np.ndarray]:
        """The selected samples for windows of ``window_ns`` ending at each step's returned end
        (its evaluation time, or @ time, minus the offset)."""
        ends = self._times(vs.at) - _clamped(nanos(vs.offset))
        start, end = int(ends.min()) - window_ns, int(ends.max())
        return await self.source.samples(matchers_of(vs), start, end), ends

    def _bucket_width(self, window_ns: int) -> int:
        """Bucket width for the pre-aggregated path, or 0 to read raw samples."""
        if self.source.table != "otel_metrics" or not self.source.use_buckets:
            return 0
        step = self.step_ns
        w = math.gcd(step, window_ns) if step else window_ns
        return w if w >= MIN_BUCKET_NS else 0

    async def selector(self, vs: pp.VectorSelector) -> Vector:
        lookback = self.source.lookback_ns
        w = self.step_ns if self.step_ns >= MIN_BUCKET_NS and self._bucket_width(self.step_ns) else 0
        if w and vs.at is None:
            try:
                return await self._selector_buckets(vs, w, lookback)
            except NeedRaw:
                pass
        series, ends = await self._fetch(vs, lookback)
        out = []
        for s in series:
            idx, ok = self._latest(s, ends, lookback)
            vals = np.full(len(self.steps), np.nan)
            vals[ok] = s.values[idx[ok]]
            # A NaN sample is a value; a stale marker ends the series (absent).
            stale = vals.view(np.uint64) == STALE_NAN_BITS
            out.append((s.labels, keep_nan(vals, ok & ~stale)))
        return Vector(out)

    def _latest(self, s: Samples, t: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Per step, the index of the series' last sample in (t - lookback, t], and where there is one."""
        idx = np.searchsorted(s.times, t, side="right") - 1
        ok = idx >= 0
        ok[ok] &= s.times[idx[ok]] > t[ok] - lookback
        return idx, ok

    async def _selector_buckets(self, vs: pp.VectorSelector, w: int, lookback: int) -> Vector:
        offset = nanos(vs.offset)
        k0 = -(-lookback // w)
        origin = int(self.steps[0]) - offset - k0 * w
        end = int(self.steps[-1]) - offset
        out = []
        for b in await bucketed(self.source, matchers_of(vs), origin, end, w):
            hi = k0 + np.arange(len(self.steps))  # bucket ending exactly at each step
            prv = last_nonempty(b.n)
            li = prv[hi]
            t = self.steps - offset
            ok = li >= 0
            safe = np.where(ok, li, 0)
            ok &= b.t_last[safe] > t - lookback
            out.append((b.labels, keep_nan(b.v_last[safe], ok)))
        return Vector(out)

    async def _range_buckets(self, name: str, ms: pp.MatrixSelector, w: int) -> Vector:
        vs = ms.vector_selector
        rng, offset = nanos(ms.range), nanos(vs.offset)
        origin = int(self.steps[0]) - offset - rng
        end = int(self.steps[-1]) - offset
        ratio, stride = rng // w, (self.step_ns // w if self.step_ns else 0)
        out = []
        for b in await bucketed(self.source, matchers_of(vs), origin, end, w):
            if name in ("sum_over_time", "avg_over_time", "min_over_time", "max_over_time") and not b.exact_stats:
                raise NeedRaw()
            hi = ratio + stride * np.arange(len(self.steps))
            lo = hi - ratio
            ends = self.steps - offset
            vals = range_over_buckets(name, b, lo, hi, ends - rng, ends)
            out.append((b.labels if name == "last_over_time" else drop_name(b.labels), vals))
        return Vector(out)

    async def range_samples(self, ms: pp.MatrixSelector) -> tuple[list[Samples], int, np.ndarray]:
        rng = nanos(ms.range)
        if rng <= 0:
            raise BadRequest("range must be positive")
        # A rollup holds one sample per bucket: a window shorter than two buckets would never hold the
        # two samples rate() needs, so it is widened to the data's resolution (as Grafana's
        # $__rate_interval does for a scrape interval).
        rng = max(rng, 2 * BUCKET_S[self.source.table] * NS)
        series, ends = await self._fetch(ms.vector_selector, rng)
        return [without_stale(s) for s in series], rng, ends

    def _windows(self, s: Samples, rng: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(s.times, t - rng, side="right")
        hi = np.searchsorted(s.times, t, side="right")
        return lo, hi

    async def _range_input(self, arg: Any, fn: str) -> tuple[list[Samples], int, np.ndarray]:
        """The samples, range and window ends of a range function's argument: a range selector or a
        subquery (evaluated at its own steps; each step's value is a sample)."""
        if isinstance(arg, pp.MatrixSelector):
            return await self.range_samples(arg)
        if isinstance(arg, pp.SubqueryExpr):
            return await self.subquery(arg)
        raise BadRequest(f"{fn}() expects a range vector such as x[5m] or a subquery")

    async def subquery(self, sq: pp.SubqueryExpr) -> tuple[list[Samples], int, np.ndarray]:
        rng = nanos(sq.range)
        ends = self._times(sq.at) - _clamped(nanos(sq.offset))
        # Without a step, Prometheus uses the global evaluation interval (1m by default), not the query's.
        step = nanos(sq.step) or SUBQUERY_DEFAULT_STEP_NS
        if rng <= 0 or step <= 0:
            raise BadRequest("subquery range and step must be positive")
        # Prometheus evaluates the inner expression at absolute multiples of its step.
        first = int(ends.min()) - rng
        last = int(ends.max())
        grid = np.arange(-(-first // step) * step, last + 1, step, dtype=np.int64)
        if len(grid) > 11_000 * max(1, len(self.steps)) or len(grid) > 1_000_000:
            raise Unprocessable("subquery has too many steps")
        if not len(grid):
            return [], rng, ends
        inner = Evaluator(self.source, grid, step, self.start_ns, self.end_ns)
        v = await inner.eval(sq.expr)
        if isinstance(v, Scalar):
            v = Vector([({}, v.values)])
        if not isinstance(v, Vector):
            raise BadRequest("a subquery needs a scalar or instant vector expression")
        out = []
        for lab, vals in v.series:
            keep = present(vals)  # a value NaN is a sample of the subquery
            if keep.any():
                out.append(Samples(lab, grid[keep], vals[keep], False))
        return out, rng, ends

    async def call(self, c: pp.Call) -> Vector | Scalar:
        name = c.func.name
        args = list(c.args)
        if name in RANGE_FUNCS:
            if len(args) != 1:
                raise BadRequest(f"{name}() expects a range vector such as x[5m]")
            if isinstance(args[0], pp.MatrixSelector):
                plain = name != "irate" and args[0].vector_selector.at is None
                w = self._bucket_width(nanos(args[0].range)) if plain else 0
                if w and nanos(args[0].range) > 0:
                    try:
                        return await self._range_buckets(name, args[0], w)
                    except NeedRaw:
                        pass
            series, rng, ends = await self._range_input(args[0], name)
            out = []
            for s in series:
                lo, hi = self._windows(s, rng, ends)
                vals = value_nans(name, s.values, lo, hi, range_over_samples(name, s, lo, hi, ends - rng, ends))
                keep_name = name == "last_over_time"
                out.append((s.labels if keep_name else drop_name(s.labels), vals))
            return Vector(out)
        if name in fx.RANGE_EXTRA:
            return await self._range_extra(name, args)
        if name in fx.DATE_FUNCS:
            if args:
                v = await self._vector_arg(args[0], name)
            else:
                v = Vector([({}, self.steps / NS)])
            return Vector([(drop_name(lab), fx.date_function(name, vals)) for lab, vals in v.series])
        if name == "timestamp":
            return await self._timestamp(args[0])
        if name in ("label_replace", "label_join"):
            return await self._label_fn(name, args)
        if name in fx.MATH_EXTRA:
            v = await self._vector_arg(args[0], name)
            with np.errstate(all="ignore"):
                return Vector([(drop_name(lab), keep_nan(fx.MATH_EXTRA[name](vals), present(vals)))
                               for lab, vals in v.series])
        if name in ("sort", "sort_desc"):
            # Order matters only for an instant query's vector (a range query's matrix is in label
            # order, as in Prometheus): by value, NaN last either way (Prometheus 3's funcSort).
            v = await self._vector_arg(args[0], name)
            return Vector(sort_by_value(v.series, name == "sort_desc")) if len(self.steps) == 1 else v
        if name in ("sort_by_label", "sort_by_label_desc"):
            return await self._sort_by_label(name, args)
        if name == "double_exponential_smoothing":
            return await self._smoothing(args)
        if name == "pi":
            return Scalar(np.full(len(self.steps), math.pi))
        if name == "clamp":
            v = await self._vector_arg(args[0], name)
            lo_s, hi_s = await self.eval(args[1]), await self.eval(args[2])
            if not isinstance(lo_s, Scalar) or not isinstance(hi_s, Scalar):
                raise BadRequest("clamp(vector, scalar, scalar)")
            empty = lo_s.values > hi_s.values
            with np.errstate(all="ignore"):
                return Vector([(drop_name(lab), np.where(empty, np.nan, np.minimum(np.maximum(vals, lo_s.values),
                                                                                    hi_s.values)))
                               for lab, vals in v.series])
        if name == "round" and len(args) == 2:
            v = await self._vector_arg(args[0], name)
            to = await self.eval(args[1])
            if not isinstance(to, Scalar):
                raise BadRequest("round(vector, scalar)")
            with np.errstate(all="ignore"):
                inv = 1.0 / to.values
                return Vector([(drop_name(lab), np.floor(vals * inv + 0.5) / inv) for lab, vals in v.series])
        if name == "histogram_quantile":
            q = await self.eval(args[0])
            hv = await self.eval(args[1])
            if not isinstance(q, Scalar) or not isinstance(hv, Vector):
                raise BadRequest("histogram_quantile(scalar, instant vector)")
            return histogram_quantile_of(q.values, hv, len(self.steps))
        if name in fx.MATH:
            v = await self._vector_arg(args[0], name)
            with np.errstate(all="ignore"):
                return Vector([(drop_name(lab), keep_nan(fx.MATH[name](vals), present(vals))) for lab, vals in v.series])
        if name in ("clamp_min", "clamp_max"):
            v = await self._vector_arg(args[0], name)
            b = await self.eval(args[1])
            if not isinstance(b, Scalar):
                raise BadRequest(f"{name}(vector, scalar)")
            f = np.maximum if name == "clamp_min" else np.minimum
            return Vector([(drop_name(lab), f(vals, b.values)) for lab, vals in v.series])
        if name == "vector":
            sc = await self.eval(args[0])
            if not isinstance(sc, Scalar):
                raise BadRequest("vector(scalar)")
            return Vector([({}, sc.values.copy())])
        if name == "scalar":
            v = await self._vector_arg(args[0], name)
            vals = np.full(len(self.steps), np.nan)
            if len(v.series) == 1:
                vals = v.series[0][1].copy()
            elif v.series:
                holding = np.sum([present(x) for _, x in v.series], axis=0)
                only = holding == 1
                stacked = np.vstack([x for _, x in v.series])
                vals[only] = np.nansum(stacked[:, only], axis=0)
            return Scalar(vals)
        if name == "time":
            return Scalar(self.steps / NS)
        if name == "absent":
            v = await self._vector_arg(args[0], name)
            seen = np.zeros(len(self.steps), dtype=bool)
            for _, vals in v.series:
                seen |= present(vals)
            labels: Labels = {}
            if isinstance(args[0], pp.VectorSelector):
                labels = {m.name: m.value for m in matchers_of(args[0]) if m.op == "=" and m.name != "__name__"}
            return Vector([(labels, np.where(seen, np.nan, 1.0))])
        raise BadRequest(f"unsupported function: {name}()")

    async def _range_extra(self, name: str, args: list[Any]) -> Vector:
        where = fx.RANGE_EXTRA[name]
        want = 2 if where else 1
        if len(args) != want:
            raise BadRequest(f"{name}() expects {want} argument(s)")
        rng_arg = args[1] if where == "first" else args[0]
        param: np.ndarray | None = None
        if where:
            p = await self.eval(args[0] if where == "first" else args[1])
            if not isinstance(p, Scalar):
                raise BadRequest(f"{name}(): the parameter must be a scalar")
            param = p.values
        series, rng, ends = await self._range_input(rng_arg, name)
        if name == "absent_over_time":
            seen = np.zeros(len(self.steps), dtype=bool)
            for s in series:
                lo, hi = self._windows(s, rng, ends)
                seen |= hi > lo
            labels: Labels = {}
            if isinstance(rng_arg, pp.MatrixSelector):
                labels = {m.name: m.value for m in matchers_of(rng_arg.vector_selector)
                          if m.op == "=" and m.name != "__name__"}
            return Vector([(labels, np.where(seen, np.nan, 1.0))])
        # The regression's intercept is at each step's evaluation time, with @ too (Prometheus 3;
        # prometheus/prometheus#13559 fixed 2.x's range queries there: docs/promql.md).
        out = []
        for s in series:
            lo, hi = self._windows(s, rng, ends)
            with np.errstate(all="ignore"):
                vals = value_nans(name, s.values, lo, hi, fx.range_extra(name, s.times, s.values, lo, hi, self.steps, param))
            out.append((drop_name(s.labels), vals))
        return Vector(out)

    async def _sort_by_label(self, name: str, args: list[Any]) -> Vector:
        """An instant query's vector by the named labels' values in natural order, then by the
        whole label set (Prometheus 3's funcSortByLabel); a range query's matrix stays in label order."""
        if len(args) < 2 or not all(isinstance(a, pp.StringLiteral) for a in args[1:]):
            raise BadRequest(f"{name}(vector, label, ...) takes label names as strings")
        v = await self._vector_arg(args[0], name)
        if len(self.steps) != 1:
            return v
        names = [a.val for a in args[1:]]
        desc = name.endswith("_desc")

        def cmp(a: tuple[Labels, np.ndarray], b: tuple[Labels, np.ndarray]) -> int:
            if desc:
                a, b = b, a
            for n in names:
                x, y = a[0].get(n, ""), b[0].get(n, "")
                if x != y:
                    return -1 if fx.natural_less(x, y) else 1
            ka, kb = sorted(a[0].items()), sorted(b[0].items())
            return -1 if ka < kb else (1 if ka > kb else 0)

        return Vector(sorted(v.series, key=functools.cmp_to_key(cmp)))

    async def _smoothing(self, args: list[Any]) -> Vector:
        if len(args) != 3:
            raise BadRequest("double_exponential_smoothing(range vector, scalar, scalar)")
        sf, tf = await self.eval(args[1]), await self.eval(args[2])
        if not isinstance(sf, Scalar) or not isinstance(tf, Scalar):
            raise BadRequest("double_exponential_smoothing(): the smoothing and trend factors must be scalars")
        for what, f in (("smoothing", sf.values), ("trend", tf.values)):
            bad = ~((f > 0) & (f < 1))
            if bad.any():
                raise Unprocessable(f"invalid {what} factor. Expected: 0 < {what[0]}f < 1, got: {f[bad][0]:f}")
        series, rng, ends = await self._range_input(args[0], "double_exponential_smoothing")
        out = []
        for s in series:
            lo, hi = self._windows(s, rng, ends)
            vals = fx.double_exponential_smoothing(s.values, lo, hi, sf.values, tf.values)
            out.append((drop_name(s.labels), value_nans("double_exponential_smoothing", s.values, lo, hi, vals)))
        return Vector(out)

    async def _timestamp(self, arg: Any) -> Vector:
        """timestamp(): a selector's sample times; any other expression's evaluation times."""
        inner = arg
        while isinstance(inner, pp.ParenExpr):
            inner = inner.expr
        if isinstance(inner, pp.VectorSelector):
            lookback = self.source.lookback_ns
            series, ends = await self._fetch(inner, lookback)
            out = []
            for s in series:
                idx, ok = self._latest(s, ends, lookback)
                vals = np.full(len(self.steps), np.nan)
                ok[ok] &= ~np.isnan(s.values[idx[ok]])
                vals[ok] = np.round(s.times[idx[ok]] / 1e6) / 1e3
                out.append((drop_name(s.labels), vals))
            return Vector(out)
        v = await self._vector_arg(arg, "timestamp")
        now = self.steps / NS
        return Vector([(drop_name(lab), np.where(np.isnan(vals), np.nan, now)) for lab, vals in v.series])

    async def _label_fn(self, name: str, args: list[Any]) -> Vector:
        v = await self._vector_arg(args[0], name)
        strs = []
        for a in args[1:]:
            if not isinstance(a, pp.StringLiteral):
                raise BadRequest(f"{name}() expects string arguments after the vector")
            strs.append(str(a.val))
        if name == "label_replace":
            if len(strs) != 4:
                raise BadRequest("label_replace(vector, dst, replacement, src, regex)")
            dst, repl, src, regex = strs
            fx.check_label_name(dst, name)
            try:
                groups = re.compile(regex).groups
            except re.error as e:
                raise BadRequest(f"invalid regular expression in label_replace(): {e}") from None
            values = sorted({lab.get(src, "") for lab, _ in v.series})
            rows = await self.source.store.named("promql/label_replace", {
                "values": values, "pattern": f"^(?:{regex})$",
                "replacement": fx.go_replacement_to_re2(repl, groups)}, request=self.source.request) if values else []
            replaced = {r[0]: r[2] for r in rows if r[1]}
            out = []
            for lab, vals in v.series:
                sv = lab.get(src, "")
                if sv in replaced:
                    lab = {k: val for k, val in lab.items() if k != dst}
                    if replaced[sv]:
                        lab[dst] = replaced[sv]
                out.append((lab, vals))
        else:
            if len(strs) < 2:
                raise BadRequest("label_join(vector, dst, separator, src...)")
            dst, sep, srcs = strs[0], strs[1], strs[2:]
            fx.check_label_name(dst, name)
            for src_name in srcs:
                fx.check_label_name(src_name, name, "source")
            out = [(fx.label_join(lab, dst, sep, srcs), vals) for lab, vals in v.series]
        check_unique(out)
        return Vector(out)

    async def _vector_arg(self, e: Any, fn: str) -> Vector:
        v = await self.eval(e)
        if not isinstance(v, Vector):
            raise BadRequest(f"{fn}() expects an instant vector")
        return v

    async def aggregate(self, a: pp.AggregateExpr) -> Vector:
        if self.source.pushdown:
            pushed = await pushdown.aggregate(self, a)
            if pushed is not None:
                return pushed
        op = str(a.op)
        v = await self._vector_arg(a.expr, op)
        by, labels = True, []
        if a.modifier is not None:
            by = "Without" not in str(a.modifier.type)
            labels = list(a.modifier.labels)

        def group_labels(lab: Labels) -> Labels:
            if by:
                return {k: lab[k] for k in labels if k in lab}
            return {k: val for k, val in lab.items() if k not in labels and k != "__name__"}

        if op in ("topk", "bottomk"):
            k = await self.eval(a.param)
            if not isinstance(k, Scalar):
                raise BadRequest(f"{op}(k, vector): k must be a scalar")
            return topk(v, group_labels, k.values, op == "topk")
        if op == "count_values":
            if not isinstance(a.param, pp.StringLiteral):
                raise BadRequest("count_values(label, vector): label must be a string")
            target = str(a.param.val)
            fx.check_label_name(target, "count_values", "")
            return count_values(v, group_labels, target, len(self.steps))
        q: np.ndarray | None = None
        if op == "quantile":
            qs = await self.eval(a.param)
            if not isinstance(qs, Scalar):
                raise BadRequest("quantile(q, vector): q must be a scalar")
            q = qs.values
        if op not in AGGREGATIONS and op != "quantile":
            raise BadRequest(f"unsupported aggregation: {op}")
        groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[np.ndarray]]] = {}
        for lab, vals in v.series:
            g = group_labels(lab)
            groups.setdefault(label_key(g), (g, []))[1].append(vals)
        out = []
        for g, members in groups.values():
            stacked = np.vstack(members)
            # A value NaN is a value here too (aggregations.py says what each makes of it).
            held = present(stacked)
            any_present = held.any(axis=0)
            with np.errstate(all="ignore"):
                vals = fx.agg_quantile(q, stacked, held) if q is not None else AGGREGATIONS[op](stacked, held)
            vals = keep_nan(vals, np.asarray(any_present))
            out.append((g, vals))
        return Vector(out)

    async def binary(self, b: pp.BinaryExpr) -> Vector | Scalar:
        op = str(b.op)
        mod = b.modifier
        return_bool = bool(mod.return_bool) if mod is not None else False
        card = str(mod.card) if mod is not None and mod.card is not None else "OneToOne"
        if op not in ("and", "or", "unless") and "ManyToMany" in card:
            raise BadRequest("many-to-many matching is only for set operators")
        lhs, rhs = await self.eval(b.lhs), await self.eval(b.rhs)
        if isinstance(lhs, Matrix) or isinstance(rhs, Matrix):
            raise BadRequest("binary operators need scalars or instant vectors")
        if op in ("and", "or", "unless"):
            if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
                raise BadRequest(f"set operator {op} needs two instant vectors")
            return set_op(op, lhs, rhs, matching(mod))
        if op not in ARITH and op not in CMP:
            raise BadRequest(f"unsupported operator: {op}")
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            if op in CMP and not return_bool:
                raise BadRequest("comparisons between scalars must use the bool modifier")
            return Scalar(apply_op(op, scalar_values(lhs.values), scalar_values(rhs.values), True))
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return Vector([vector_scalar(op, lab, vals, rhs.values, return_bool, left=True) for lab, vals in lhs.series])
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return Vector([vector_scalar(op, lab, vals, lhs.values, return_bool, left=False) for lab, vals in rhs.series])
        assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
        on, names = matching(mod)
        if "ManyToOne" in card or "OneToMany" in card:
            return group_binary(op, lhs, rhs, on, names, list(mod.group_labels or []) if mod is not None else [], "OneToMany" in card,
                                 return_bool)
        right: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
        for lab, vals in rhs.series:
            sig = label_key(signature(lab, on, names))
            if sig in right:
                raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
            right[sig] = vals
        out = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for lab, vals in lhs.series:
            sig = label_key(signature(lab, on, names))
            if sig not in right:
                continue
            if sig in seen:
                raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
            seen.add(sig)
            res = apply_op(op, vals, right[sig], return_bool)
            filtering = op in CMP and not return_bool
            if filtering:
                res = np.where(res == 1.0, vals, np.nan)
            # Prometheus' resultMetric: the name goes for arithmetic and bool; on() keeps only its
            # labels, ignoring() drops its labels.
            result_labels = dict(lab) if filtering else drop_name(lab)
            if on:
                result_labels = {k: v for k, v in result_labels.items() if k in names}
            else:
                result_labels = {k: v for k, v in result_labels.items() if k not in names}
            out.append((result_labels, res))
        return Vector(out)


def nodes(e: Any) -> Iterator[Any]:
    """Every node of the expression tree."""
    stack = [e]
    while stack:
        x = stack.pop()
        yield x
        for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
            child = getattr(x, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                stack.append(child)
        if isinstance(x, pp.Call):
            stack.extend(x.args)


def max_window(e: Any) -> int:
    """Longest range + offset in the expression, to choose the table."""
    best = 0
    for x in nodes(e):
        if isinstance(x, pp.MatrixSelector):
            best = max(best, nanos(x.range) + nanos(x.vector_selector.offset))
        elif isinstance(x, pp.VectorSelector):
            best = max(best, LOOKBACK_NS + nanos(x.offset))
    return best


def at_times(e: Any, start_ns: int, end_ns: int) -> list[int]:
    """The times the expression's @ modifiers fix (for a query from start to end)."""
    return [at_ns(x.at, start_ns, end_ns) for x in nodes(e)
            if isinstance(x, (pp.VectorSelector, pp.SubqueryExpr)) and x.at is not None]


def make_source(store: TenantStore, expr: Any, start_ns: int, end_ns: int, step_ns: int, request: Any = None,
                use_buckets: bool = True, pushdown: bool = True) -> Source:
    # An @ time outside the query's range widens the span the table must hold.
    ats = at_times(expr, start_ns, end_ns)
    lo, hi = min([start_ns, *ats]), max([end_ns, *ats])
    table = choose_metrics_table(lo - max_window(expr), hi, step_ns / NS, store.retention)
    bucket = BUCKET_S[table] * NS
    return Source(store=store, table=table, lookback_ns=max(LOOKBACK_NS, 2 * bucket), request=request,
                  use_buckets=use_buckets, pushdown=pushdown)


async def evaluate(store: TenantStore, expr: Any, start_ns: int, end_ns: int, step_ns: int, request: Any = None,
                   *, use_buckets: bool = True, pushdown: bool | None = None
                   ) -> tuple[Vector | Scalar | Matrix, np.ndarray, str]:
    """Evaluate at each step in [start, end]; returns the value, the steps and the table read."""
    steps = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64) if step_ns else np.array([start_ns], dtype=np.int64)
    # The reference path (use_buckets=False) evaluates everything from raw samples in Python.
    source = make_source(store, expr, start_ns, end_ns, step_ns or 1, request, use_buckets,
                         use_buckets if pushdown is None else pushdown)
    source.reuse_catalog = True
    ev = Evaluator(source, steps, step_ns)
    if isinstance(expr, pp.MatrixSelector) and len(steps) == 1:
        series, _, _ = await ev.range_samples(expr)
        return Matrix(series), steps, source.table
    if isinstance(expr, pp.SubqueryExpr) and len(steps) == 1:
        series, rng, ends = await ev.subquery(expr)
        end = int(ends[0])
        windowed = [Samples(s.labels, s.times[keep], s.values[keep], s.counter)
                    for s in series for keep in [(s.times > end - rng) & (s.times <= end)] if keep.any()]
        return Matrix(windowed), steps, source.table
    if isinstance(expr, pp.StringLiteral):
        raise BadRequest("unsupported: string results")
    return await ev.eval(expr), steps, source.table
