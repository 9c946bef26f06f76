"""TraceQL search: candidate traces in SQL, then the spanset algebra over their spans.

Step one (sql/queries/tempo/search_candidates.sql) scans the window for traces with spans matching
the query's spanset filters, newest first, in time slices from the end (the last ten minutes, the
rest of the hour, the five hours before, then the rest) so a search that finds enough recent traces never reads the whole window.
Step two (tempo/search_spans.sql) reads every span of those traces by id with the filters as
boolean columns; the spanset operators (``&& || > >> < << ~``) and the pipeline (spanset filters,
``count() avg() min() max() sum()`` comparisons, ``by()``, ``select()``, ``coalesce()``) run here,
on at most :data:`MAX_CANDIDATES` traces per request: a structural query whose candidates mostly
fail answers what those candidates gave (Tempo too answers its first N results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from ..spans import trace_windows
from ..storage.store import TenantStore
from ..timeparse import NS
from .parser import AggFilter, Attr, By, Filter, Intrinsic, Lit, Operand, Query, Select, SpansetOp
from .planner import Planner, comparisons, leaves_of, operands_of

ZERO_SPAN = "0" * 16
MAX_CANDIDATES = 2000
BATCH = 500
SLICES_NS = (600 * NS, 3600 * NS, 6 * 3600 * NS)
# Intrinsics read from the fixed columns of step two, not shown as attributes.
_FIXED = ("duration", "traceDuration", "rootName", "rootServiceName", "event:name", "link:traceID",
          "link:spanID", "span:id", "span:parentID", "trace:id", "nestedSetParent")


@dataclass
class SpanRow:
    trace_id: str
    span_id: str
    parent: str
    start: int
    duration: int
    name: str
    service: str
    root_service: str
    root_name: str
    trace_duration: int
    trace_start: int
    leaves: tuple[bool, ...]
    values: tuple[tuple[bool, str, str], ...]


@dataclass
class Spanset:
    spans: list[SpanRow]
    by: list[tuple[Operand, tuple[bool, str, str]]] = field(default_factory=list)


@dataclass
class TraceHit:
    spans: list[SpanRow]  # every span of the trace
    spansets: list[Spanset]


class Search:
    """One TraceQL search request's plan."""

    def __init__(self, q: Query) -> None:
        if q.metrics is not None:
            raise BadRequest("TraceQL: metrics functions are answered by /api/metrics/query_range, not search")
        self.q = q
        self.main = leaves_of(q.spansets)
        self.stage_filters = [s for s in q.stages if isinstance(s, Filter)]
        if any(isinstance(s, SpansetOp) for s in q.stages):
            raise BadRequest("TraceQL: spanset operators inside a pipeline stage are not supported")
        self.leaves = self.main + self.stage_filters
        self.leaf_index = {id(f): i for i, f in enumerate(self.leaves)}
        shown: list[Operand] = []
        for f in self.leaves:
            shown += operands_of(f.expr)
        for s in q.stages:
            if isinstance(s, (By, Select)):
                shown += list(s.operands)
            elif isinstance(s, AggFilter) and s.arg is not None:
                shown.append(s.arg)
        self.shown: list[Operand] = []
        for o in shown:
            if o in self.shown or (isinstance(o, Intrinsic) and o.name in _FIXED) \
                    or (isinstance(o, Attr) and o.scope in ("event", "link")):
                continue
            self.shown.append(o)
        for s in q.stages:
            if isinstance(s, By):
                for o in s.operands:
                    if o not in self.shown and not (isinstance(o, Intrinsic) and o.name in ("rootName", "rootServiceName")):
                        raise BadRequest(f"TraceQL: by({o.label()}) is not supported")
        # Exact in step one: the candidates are the answer, in order.
        self.exact = isinstance(q.spansets, Filter) and not q.stages and not _has_trace_level(q.spansets.expr)
        self.select_attrs = [o for s in q.stages if isinstance(s, Select) for o in s.operands]

    def candidates_sql(self) -> tuple[str, dict[str, Any]]:
        p = Planner()
        p.number_leaves(self.main)
        columns = p.join([p.leaf(f, i, relax=True) for i, f in enumerate(self.main)])
        sql = p.query("tempo/search_candidates", COLUMNS=columns, ANY=p.any_leaf(len(self.main)),
                      HAVING=p.having(self.q.spansets))
        return sql, p.params

    def spans_sql(self) -> tuple[str, dict[str, Any]]:
        p = Planner()
        parts = [p.leaf(f, i, relax=False) for i, f in enumerate(self.leaves)]
        parts += [p.value_tuple(o) for o in self.shown]
        return p.query("tempo/search_spans", COLUMNS=p.join(parts)), p.params

    async def run(self, store: TenantStore, start: int, end: int, limit: int, *,
                  min_duration: int = 0, max_duration: int | None = None, **kw: Any) -> list[TraceHit]:
        await check_regexes(store, [f.expr for f in self.leaves], **kw)
        sql_a, params_a = self.candidates_sql()
        sql_b, params_b = self.spans_sql()
        found: list[TraceHit] = []
        seen: set[str] = set()
        examined = 0
        slice_end = end
        for bound in (*(end - s for s in SLICES_NS), start):
            slice_start = max(bound, start)
            if slice_start > slice_end:
                continue
            want = limit - len(found)
            cap = want if self.exact and not min_duration and max_duration is None else max(want * 5, 100)
            cap = min(cap, MAX_CANDIDATES - examined)
            if cap <= 0:
                break
            rows = await store.rows(sql_a, {**params_a, "start_ns": slice_start, "end_ns": slice_end,
                                             "limit": cap}, **kw)
            ids = [r[0] for r in rows if r[0] not in seen]
            seen.update(ids)
            examined += len(ids)
            for i in range(0, len(ids), BATCH):
                batch = ids[i:i + BATCH]
                hits = await self._evaluate(store, sql_b, params_b, batch, (slice_start, slice_end), **kw)
                for tid in batch:
                    hit = hits.get(tid)
                    if hit is None:
                        continue
                    dur = hit.spans[0].trace_duration
                    if dur < min_duration or (max_duration is not None and dur > max_duration):
                        continue
                    found.append(hit)
                    if len(found) >= limit:
                        return found
            slice_end = slice_start - 1
            if slice_start <= start:
                break
        return found

    async def _evaluate(self, store: TenantStore, sql: str, params: dict[str, Any], ids: list[str],
                        found_in: tuple[int, int], **kw: Any) -> dict[str, TraceHit]:
        windows = await trace_windows(store, ids, found_in=found_in, **kw)
        lo = min(w[0] for w in windows.values())
        hi = max(w[1] for w in windows.values())
        rows = await store.rows(sql, {**params, "trace_ids": list(windows), "start_ns": lo, "end_ns": hi}, **kw)
        n = len(self.leaves)
        by_trace: dict[str, list[SpanRow]] = {}
        for r in rows:
            s = SpanRow(r[0], r[1], r[2], int(r[3]), int(r[4]), r[5], r[6], r[7], r[8], int(r[9]), int(r[10]),
                        tuple(bool(x) for x in r[11:11 + n]),
                        tuple((bool(v[0]), str(v[1]), str(v[2])) for v in r[11 + n:]))
            by_trace.setdefault(s.trace_id, []).append(s)
        out = {}
        for tid, spans in by_trace.items():
            sets = self.spansets(spans)
            if sets:
                out[tid] = TraceHit(spans, sets)
        return out

    # -- spanset algebra
    def spansets(self, spans: list[SpanRow]) -> list[Spanset]:
        matched = self.eval(self.q.spansets, spans)
        sets = [Spanset(matched)] if matched else []
        for stage in self.q.stages:
            if isinstance(stage, Filter):
                i = self.leaf_index[id(stage)]
                sets = [Spanset(kept, ss.by) for ss in sets if (kept := [s for s in ss.spans if s.leaves[i]])]
            elif isinstance(stage, AggFilter):
                sets = [ss for ss in sets if self.agg_ok(stage, ss.spans)]
            elif isinstance(stage, By):
                if not stage.operands:  # coalesce(): one spanset of all
                    merged = _union([s for ss in sets for s in ss.spans])
                    sets = [Spanset(merged)] if merged else []
                    continue
                split: list[Spanset] = []
                for ss in sets:
                    groups: dict[tuple[Any, ...], list[SpanRow]] = {}
                    for s in ss.spans:
                        groups.setdefault(tuple(self.value(o, s) for o in stage.operands), []).append(s)
                    for key, members in groups.items():
                        split.append(Spanset(members, ss.by + list(zip(stage.operands, key))))
                sets = split
        return sets

    def eval(self, e: Any, spans: list[SpanRow]) -> list[SpanRow]:
        if isinstance(e, Filter):
            i = self.leaf_index[id(e)]
            return [s for s in spans if s.leaves[i]]
        assert isinstance(e, SpansetOp)
        lhs, rhs = self.eval(e.lhs, spans), self.eval(e.rhs, spans)
        if e.op == "&&":
            return _union(lhs + rhs) if lhs and rhs else []
        if e.op == "||":
            return _union(lhs + rhs)
        if not lhs or not rhs:
            return []
        if e.op == ">":
            parents = {s.span_id for s in lhs}
            return [s for s in rhs if s.parent in parents]
        if e.op == "<":
            parents = {s.parent for s in lhs}
            return [s for s in rhs if s.span_id in parents]
        if e.op == "~":
            by_parent: dict[str, set[str]] = {}
            for s in lhs:
                if s.parent != ZERO_SPAN:
                    by_parent.setdefault(s.parent, set()).add(s.span_id)
            return [s for s in rhs if s.parent != ZERO_SPAN and by_parent.get(s.parent, set()) - {s.span_id}]
        if e.op == ">>":
            below = _descendants({s.span_id for s in lhs}, spans)
            return [s for s in rhs if s.span_id in below]
        if e.op == "<<":
            above = _ancestors({s.span_id for s in lhs}, {s.span_id: s.parent for s in spans})
            return [s for s in rhs if s.span_id in above]
        raise BadRequest(f"TraceQL: the spanset operator {e.op} is not supported")

    def value(self, o: Operand, s: SpanRow) -> tuple[bool, str, str]:
        if isinstance(o, Intrinsic):
            if o.name == "rootName":
                return True, s.root_name, "s"
            if o.name == "rootServiceName":
                return True, s.root_service, "s"
        return s.values[self.shown.index(o)]

    def number(self, o: Operand | None, s: SpanRow) -> float | None:
        if isinstance(o, Intrinsic):
            if o.name == "duration":
                return float(s.duration)
            if o.name == "traceDuration":
                return float(s.trace_duration)
        assert o is not None
        exists, text, kind = self.value(o, s)
        if not exists or kind not in ("i", "d"):
            return None
        try:
            return float(text)
        except ValueError:
            return None

    def agg_ok(self, a: AggFilter, spans: list[SpanRow]) -> bool:
        if a.func == "count":
            got: float | None = float(len(spans))
        else:
            vals = [v for s in spans if (v := self.number(a.arg, s)) is not None]
            if not vals:
                return False
            got = {"avg": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "sum": sum(vals)}[a.func]
        want = float(a.value.value)
        assert got is not None
        return {"=": got == want, "!=": got != want, ">": got > want, ">=": got >= want,
                "<": got < want, "<=": got <= want}[a.op]


async def check_regexes(store: TenantStore, exprs: list[Any], **kw: Any) -> None:
    """Compile the query's regexes in ClickHouse (RE2) once: one that does not compile is a 400
    even where no span has the attribute (ClickHouse never evaluates it there)."""
    for pattern in sorted({c.rhs.value for e in exprs for c in comparisons(e) if c.op in ("=~", "!~")}):
        await store.named("shared/regex_match", {"values": [""], "pattern": f"^(?:{pattern})$"}, **kw)


def _union(spans: list[SpanRow]) -> list[SpanRow]:
    out = {s.span_id: s for s in spans}
    return sorted(out.values(), key=lambda s: (s.start, s.span_id))


def _ancestors(ids: set[str], parent_of: dict[str, str]) -> set[str]:
    """Every ancestor of the spans ``ids``; each span is visited once (linear in the trace)."""
    out: set[str] = set()
    for span_id in ids:
        cur = parent_of.get(span_id, ZERO_SPAN)
        while cur != ZERO_SPAN and cur not in out:
            out.add(cur)
            cur = parent_of.get(cur, ZERO_SPAN)
    return out


def _descendants(ids: set[str], spans: list[SpanRow]) -> set[str]:
    """Every descendant of the spans ``ids`` (linear in the trace, cycles included)."""
    children: dict[str, list[str]] = {}
    for s in spans:
        children.setdefault(s.parent, []).append(s.span_id)
    out: set[str] = set()
    todo = list(ids)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _has_trace_level(e: Any) -> bool:
    return any(isinstance(o, Intrinsic) and o.name in ("rootName", "rootServiceName", "traceDuration")
               for o in operands_of(e))


def tags_query(tags: dict[str, str]) -> Query:
    """Tempo's legacy ``tags`` search (logfmt ``key=value``): each value a case-insensitive substring
    of the text of the span's (else the resource's) attribute, of any kind; ``name`` is the span name."""
    from .parser import And, Cmp
    from .planner import re2_escape
    expr: Any = None
    for k, v in tags.items():
        operand: Operand = Intrinsic("name") if k == "name" else Attr("", k)
        c = Cmp(operand, "=~", Lit("text", f"(?i){re2_escape(v)}"))
        expr = c if expr is None else And(expr, c)
    return Query(Filter(expr))
