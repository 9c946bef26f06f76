"""Which plan (plans.py) answers a PromQL aggregation in ClickHouse, or why the Python evaluator does.

Pure functions, no I/O: :func:`shape` reads what the expression asks for, :func:`facts` what the
series it selects are, and :func:`plan` chooses, returning a :class:`Plan` (loggable with
:meth:`Plan.explain`) or :class:`Python` with the reason. tests/test_query_promql_plans.py checks
the choices without ClickHouse; docs/promql.md gives the measurements behind the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import promql_parser as pp

from ...storage.tables import BUCKET_S
from ...timeparse import NS
from ..matchers import LabelMatcher, matchers_of
from ..parse import nanos
from .plans import PLANS, SAMPLES, SAMPLES_RAW_OTLP, WINDOW_TAILS, PlanSpec, Stage

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
# From this many copies of each sample on, reading each window's first sample with a lag or pairing
# its ends beats copying: measured over 24 h of raw points, rate[5m] at a one-minute step took
# 0.3 s either way and 6.5 s copying; at a five-minute step (one or two copies) copying is as fast.
INCREMENTS_MIN_COPIES = 3
FRAME_MAX_RANGE_MS = 2**31 - 1  # window frames take RANGE offsets below 2^31 (in milliseconds at most)
# A counter's lagged plan takes 20 ms more to plan than the copying one (more expressions): it pays
# from a few hundred thousand windows (series x steps) on. rate(c[414s]) over points 138 s apart,
# whole evaluation, lagged vs copying: 16 series x 1,441 steps 70 vs 49 ms; 1,600 x 61 75 vs 57;
# 160 x 1,441 100 vs 95; 1,600 x 241 93 vs 117; 1,600 x 361 129 vs 129; 1,600 x 1,441 233 vs 282.
LAGGED_MIN_WINDOWS = 300_000


@dataclass(frozen=True)
class Python:
    """Evaluate in Python, and why."""

    reason: str

    def explain(self) -> str:
        return f"evaluate in Python: {self.reason}"


@dataclass(frozen=True)
class Shape:
    """What an aggregation asks for: ``op [by|without (names)] (fn(selector[window]))`` at the steps."""

    text: str
    op: str
    by: bool
    names: tuple[str, ...]
    fn: str  # "" for a plain selector
    matchers: tuple[LabelMatcher, ...]
    window_ns: int  # the range, or the lookback of a plain selector
    offset_ns: int
    step_ns: int  # 0 for an instant query
    steps: int
    table: str

    @property
    def copies(self) -> int:
        """How many windows hold each sample (the copying stages copy it to each)."""
        return self.window_ns // self.step_ns if self.step_ns else 1


@dataclass(frozen=True)
class Facts:
    """What the selected series are: one family kind (value, count, sum or bucket), one temporality."""

    kind: str
    delta: bool
    series: int
    # Every series written by OTLP alone (no remote-written samples, no stale markers).
    otlp_only: bool = False


@dataclass(frozen=True)
class Plan:
    """A plan chosen for one query: its stages' fragments and the parameters the plan fixes."""

    spec: PlanSpec
    shape: Shape
    facts: Facts
    stages: tuple[Stage, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    # When every stage overflowed (the copying stage dropped): why Python answers then.
    exhausted: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def fragments(self, stage: Stage) -> tuple[str, ...]:
        """The named SQL files one stage's query is made of, in order."""
        raw = self.shape.table == "otel_metrics"
        head = SAMPLES_RAW_OTLP if raw and not self.spec.arrays and self.facts.otlp_only else SAMPLES[(raw, self.spec.arrays)]
        tail = WINDOW_TAILS[self._tail()] if stage.window_tail else ()
        return (head, *stage.fragments, *tail)

    def _tail(self) -> str:
        if not self.spec.arrays:
            return "value"
        return "buckets_linear" if self.facts.delta or self.shape.fn == "delta" else "buckets"

    def explain(self) -> str:
        """The plan as an EXPLAIN-like text: one line per stage, with what makes it give way."""
        s, f = self.shape, self.facts
        lines = [f"pushdown plan {self.name} for {s.text}: {f.series} {f.kind} series"
                 f"{' (delta)' if f.delta else ''}, {s.steps} steps, {s.table}, window {s.window_ns / NS:g}s"]
        for i, stage in enumerate(self.stages, 1):
            params = {**self.params, **stage.params}
            line = f"  {i}. {stage.name}: {' > '.join(self.fragments(stage))}"
            if params:
                line += " " + " ".join(f"{k}={v}" for k, v in sorted(params.items()))
            if stage.bounded:
                line += f"; on {stage.bounded}: next"
            lines.append(line)
        if self.exhausted:
            lines.append(f"  then evaluate in Python: {self.exhausted}")
        return "\n".join(lines)


def _unwrap(e: Any) -> Any:
    while isinstance(e, pp.ParenExpr):
        e = e.expr
    return e


def shape(a: pp.AggregateExpr, table: str, lookback_ns: int, step_ns: int, steps: int) -> Shape | Python:
    """What the aggregation asks for, or why no plan can answer it whatever the series.

    Raises:
        BadRequest: an invalid selector (as the Python evaluator would).
    """
    op = str(a.op)
    if op not in AGGS:
        return Python(f"{op} is not pushed down")
    by, names = True, []
    if a.modifier is not None:
        by = "Without" not in str(a.modifier.type)
        names = list(a.modifier.labels)
    if "__name__" in names:
        return Python("grouping by __name__")
    inner = _unwrap(a.expr)
    fn = ""
    if isinstance(inner, pp.Call) and inner.func.name in RANGE_FUNCS and len(inner.args) == 1 \
            and isinstance(inner.args[0], pp.MatrixSelector):
        fn = inner.func.name
        vs = inner.args[0].vector_selector
        window = nanos(inner.args[0].range)
        if window <= 0:
            return Python("a range that is not positive")
        # As the Python evaluator does: a rollup window holds at least two of its buckets.
        window = max(window, 2 * BUCKET_S[table] * NS)
    elif isinstance(inner, pp.VectorSelector):
        vs = inner
        window = lookback_ns
    else:
        return Python("the argument is neither a selector nor a pushed-down range function of one")
    if vs.at is not None:
        return Python("the @ modifier")
    matchers = matchers_of(vs)
    if any(m.name == "le" for m in matchers):
        return Python("an `le` matcher (matched per bucket bound)")
    out = Shape(str(a), op, by, tuple(names), fn, tuple(matchers), window, nanos(vs.offset), step_ns, steps, table)
    # The lagged and prefix stages of rate/increase/delta copy nothing; the others copy each sample.
    if out.copies > MAX_COPIES and fn not in PAIR_FUNCS:
        return Python(f"each sample would be copied to {out.copies} windows (more than {MAX_COPIES})")
    return out


def facts(s: Shape, series: Iterable[tuple[int, str, bool]], bounds_changed: Iterable[int],
          otlp_only: bool = False) -> Facts | Python:
    """What the selected series are, from their (id, family kind, delta?) and whether OTLP alone
    wrote them all, or why no plan answers them. Needs at least one series."""
    rows = list(series)
    kinds = {kind for _, kind, _ in rows}
    if len(kinds) > 1 or len({sid for sid, _, _ in rows}) != len(rows):
        return Python("a histogram's families side by side (handled per family)")
    deltas = {delta for _, _, delta in rows}
    if len(deltas) > 1:
        return Python("delta and cumulative series together (running totals for deltas only)")
    kind = kinds.pop()
    if kind == "bucket" and (s.op not in BUCKET_AGGS or s.fn not in BUCKET_FUNCS):
        return Python(f"{s.op}({s.fn or 'selector'}) of a histogram's buckets (arrays sum element-wise only)")
    if kind == "bucket" and set(bounds_changed) & {sid for sid, _, _ in rows}:
        return Python("bucket bounds changed within the window (each `le` followed across it)")
    return Facts(kind, deltas.pop(), len(rows), otlp_only)


def plan(s: Shape, f: Facts) -> Plan | Python:
    """The plan answering the shape over such series, or why Python does."""
    raw = s.table == "otel_metrics"
    bucket = f.kind == "bucket"
    copies = s.copies
    suffix = "_buckets" if bucket else ""
    if not s.fn:
        return _plan(PLANS["instant" + suffix], s, f)
    if s.fn not in PAIR_FUNCS:
        return _plan(PLANS["over_time"], s, f)
    if not raw and s.window_ns == 2 * BUCKET_S[s.table] * NS:
        return _plan(PLANS["pairs" + suffix], s, f)
    if bucket and copies >= INCREMENTS_MIN_COPIES and s.window_ns <= FRAME_MAX_RANGE_MS * 1_000_000:
        spec = PLANS["lagged_delta_buckets" if f.delta else "lagged_buckets"]
        # Frames ordered by microseconds take RANGE offsets up to 2^31 (35.8 minutes): longer
        # windows count in milliseconds.
        unit = 1_000 if -(-s.window_ns // 1_000) <= FRAME_MAX_RANGE_MS else 1_000_000
        return _plan(spec, s, f, {"unit_ns": unit, "range_units": -(-s.window_ns // unit)})
    if not bucket and copies >= INCREMENTS_MIN_COPIES and (f.series * s.steps >= LAGGED_MIN_WINDOWS
                                                           or copies > MAX_COPIES):
        return _plan(PLANS["lagged"], s, f)
    if copies > MAX_COPIES:
        return Python(f"each sample would be copied to {copies} windows (more than {MAX_COPIES})")
    return _plan(PLANS["windows" + suffix], s, f)


def _plan(spec: PlanSpec, s: Shape, f: Facts, frames: Mapping[str, int] | None = None) -> Plan:
    stages, exhausted = spec.stages, ""
    if stages[-1].bounded == "" and len(stages) > 1 and s.copies > MAX_COPIES:
        # The last stage copies each sample to every window holding it: too many copies.
        stages = stages[:-1]
        exhausted = f"windows denser than the bounded stages read, and {s.copies} copies per sample to copy"
    return Plan(spec, s, f, stages, {**spec.params, **(frames or {})}, exhausted)
