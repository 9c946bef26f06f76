"""TraceQL span conditions -> SQL composed from the fixed fragments of sql/queries/tempo_fragments.sql.

The planner never writes user text into SQL: it picks fragments by the shape of the parsed query,
fills their slots (``%A%``, ``%TEXT%``...) with other fragments, numbers each fragment's
parameters per use (``{v:String}`` -> ``{v_3:String}``) and binds the values. Comparison
operators are bound values too.

A spanset filter ``{ ... }`` becomes one boolean column ``c<i>`` per span (:meth:`Planner.leaf`).
``relax=True`` plans the necessary condition used to pick candidate traces over the whole window,
where the trace-level intrinsics (``rootName``, ``rootServiceName``, ``traceDuration``) are not
known: they read as true (as false under ``!``) there, and exactly in the second step.
"""

from __future__ import annotations

import re
from typing import Any

from ...clickhouse import sqlfiles
from ..errors import BadRequest
from .parser import And, Attr, BoolConst, Cmp, Filter, Intrinsic, Lit, Not, Operand, Or, SpansetOp

FRAGMENTS = "tempo_fragments"
_PARAM = re.compile(r"\{([a-z_]+):")
TRACE_LEVEL = ("rootName", "rootServiceName", "traceDuration")
# Intrinsics that are one text column per span: fragment of the column.
TEXT_INTRINSICS = {
    "name": "col_name", "statusMessage": "col_status_message", "rootName": "col_root_name",
    "rootServiceName": "col_root_service", "instrumentation:name": "col_scope_name",
    "instrumentation:version": "col_scope_version", "span:id": "col_span_id",
    "span:parentID": "col_parent_id", "trace:id": "col_trace_id",
}
ID_INTRINSICS = ("span:id", "span:parentID", "trace:id", "link:traceID", "link:spanID")
# Shown values of intrinsics (by(), select()): their text column.
SHOWN_INTRINSICS = {**TEXT_INTRINSICS, "status": "col_status", "kind": "col_kind"}


def re2_escape(text: str) -> str:
    """``text`` as an RE2 literal."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


class Planner:
    """Builds one SQL statement's composed parts and collects their bound parameters."""

    def __init__(self) -> None:
        self.frags = sqlfiles.fragments(FRAGMENTS)
        self.params: dict[str, Any] = {}
        self.n = 0

    def frag(self, name: str, params: dict[str, Any] | None = None, **slots: str) -> str:
        return self._frag(name, params, None, slots)

    def frag_as(self, number: int, name: str, params: dict[str, Any], **slots: str) -> str:
        """As :meth:`frag`, with the parameters numbered ``number``: fragments that bind the same
        values share it, so ClickHouse computes their common expressions once."""
        return self._frag(name, params, number, slots)

    def _frag(self, name: str, params: dict[str, Any] | None, number: int | None, slots: dict[str, str]) -> str:
        text = self.frags[name]
        if params:
            n = self.n if number is None else number
            if number is None:
                self.n += 1

            def rename(m: re.Match[str]) -> str:
                if m.group(1) not in params:
                    raise KeyError(f"fragment {name}: parameter {m.group(1)} not given")
                return "{%s_%d:" % (m.group(1), n)

            text = _PARAM.sub(rename, text)
            for k, v in params.items():
                self.params[f"{k}_{n}"] = v
        for slot, value in slots.items():
            text = text.replace(f"%{slot}%", value)
        return text

    def query(self, name: str, **slots: str) -> str:
        """``sql/queries/<name>.sql`` with its slots filled (comment lines dropped: they name the
        slots, and a filled slot spans lines)."""
        text = "\n".join(line for line in sqlfiles.query(name).splitlines() if not line.lstrip().startswith("--"))
        for slot, value in slots.items():
            if f"%{slot}%" not in text:
                raise KeyError(f"{name}.sql has no slot {slot}")
            text = text.replace(f"%{slot}%", value)
        return text

    def join(self, parts: list[str]) -> str:
        return f"{self.frag('column_sep')}\n".join(parts)

    # -- spanset filters
    def leaf(self, f: Filter, index: int, *, relax: bool) -> str:
        return self.frag("leaf_column", A=self.cond(f.expr, relax, True), N=str(index))

    def cond(self, e: Any, relax: bool, positive: bool) -> str:
        if e is None:
            return self.frag("true")
        if isinstance(e, BoolConst):
            return self.frag("true" if e.value else "false")
        if isinstance(e, And):
            return self.frag("and", A=self.cond(e.lhs, relax, positive), B=self.cond(e.rhs, relax, positive))
        if isinstance(e, Or):
            return self.frag("or", A=self.cond(e.lhs, relax, positive), B=self.cond(e.rhs, relax, positive))
        if isinstance(e, Not):
            return self.frag("not", A=self.cond(e.expr, relax, not positive))
        assert isinstance(e, Cmp)
        if relax and isinstance(e.lhs, Intrinsic) and e.lhs.name in TRACE_LEVEL:
            return self.frag("true" if positive else "false")
        return self.cmp(e)

    def having(self, e: Any) -> str:
        """The spanset expression over "some span of the trace matches leaf i" (max(c<i>))."""
        if isinstance(e, Filter):
            return self.frag("leaf_any", N=str(self._leaf_index[id(e)]))
        assert isinstance(e, SpansetOp)
        return self.frag("or" if e.op == "||" else "and", A=self.having(e.lhs), B=self.having(e.rhs))

    def any_leaf(self, n: int) -> str:
        out = self.frag("leaf_ref", N="0")
        for i in range(1, n):
            out = self.frag("or", A=out, B=self.frag("leaf_ref", N=str(i)))
        return out

    def number_leaves(self, leaves: list[Filter]) -> None:
        self._leaf_index = {id(f): i for i, f in enumerate(leaves)}

    # -- value sources: (exists, text, kind)
    def source(self, o: Operand) -> tuple[str, str, str]:
        if isinstance(o, Intrinsic):
            col = SHOWN_INTRINSICS.get(o.name)
            if col is None:
                raise BadRequest(f"TraceQL: {o.name} cannot be used here")
            return self.frag("true"), self.frag(col), self.frag("kind_string")
        if o.scope == "resource" and o.name == "service.name":
            # The column every span has: no map read.
            return self.frag("true"), self.frag("col_service"), self.frag("kind_string")
        n = self.n  # one parameter for the key in all three
        self.n += 1
        key = {"k": o.name}
        if o.scope in ("span", "resource", ""):
            prefix = {"span": "span", "resource": "resource", "": "any"}[o.scope]
            text = self.frag_as(n, f"{prefix}_text", key)
            infer = self.frag("infer_kind", TEXT=text)
            return (self.frag_as(n, f"{prefix}_exists", key), text,
                    self.frag_as(n, f"{prefix}_kind", key, INFER=infer))
        if o.scope == "instrumentation":
            text = self.frag_as(n, "instrumentation_text", key)
            return self.frag_as(n, "instrumentation_exists", key), text, self.frag("infer_kind", TEXT=text)
        if o.scope in ("event", "link"):
            text = self.frag_as(n, "map_text", key)
            return self.frag_as(n, "map_exists", key), text, self.frag("infer_kind", TEXT=text)
        raise BadRequest(f"TraceQL: the scope '{o.scope}' is not supported")

    def value_tuple(self, o: Operand) -> str:
        if isinstance(o, Attr) and o.scope in ("event", "link"):
            raise BadRequest(f"TraceQL: {o.label()} cannot be selected or grouped by")
        exists, text, kind = self.source(o)
        return self.frag("value_tuple", EXISTS=exists, TEXT=text, KIND=kind)

    # -- comparisons
    def cmp(self, e: Cmp) -> str:
        lhs, op, lit = e.lhs, e.op, e.rhs
        if isinstance(lhs, Intrinsic):
            return self.cmp_intrinsic(lhs.name, op, lit)
        if lit.type in ("duration", "status", "kind"):
            raise BadRequest(f"TraceQL: {lhs.label()} compared with a {lit.type} literal is not supported")
        exists, text, kind = self.source(lhs)
        # A column source (resource.service.name) holds strings only: no array branch.
        column = lhs.scope == "resource" and lhs.name == "service.name"
        out = self.typed(op, lit, exists, text, kind, lhs.label(), arrays=not column)
        if lhs.scope == "event":
            return self.frag("events_any", A=out)
        if lhs.scope == "link":
            return self.frag("links_any", A=out)
        return out

    def typed(self, op: str, lit: Lit, exists: str, text: str, kind: str, what: str, *,
              arrays: bool = True) -> str:
        if lit.type == "nil":
            if op not in ("=", "!="):
                raise BadRequest(f"TraceQL: nil compares with = or != only ({what} {op} nil)")
            return self.frag("cmp_nil", {"op": op}, EXISTS=exists, TEXT=text, KIND=kind)
        scalar = self.scalar(op, lit, exists, text, kind, what)
        if not arrays or lit.type == "text":
            return scalar
        neg = op in ("!=", "!~")
        pos_op = {"!=": "=", "!~": "=~"}.get(op, op)
        elem = self.scalar(pos_op, lit, self.frag("true"), self.frag("elem_text"), self.frag("elem_kind"), what)
        return self.frag("with_arrays", {"neg": neg}, SCALAR=scalar, POS=elem, EXISTS=exists, TEXT=text, KIND=kind)

    def scalar(self, op: str, lit: Lit, exists: str, text: str, kind: str, what: str) -> str:
        slots = {"EXISTS": exists, "TEXT": text, "KIND": kind}
        if lit.type == "text":  # only built by the tags search, never parsed
            return self.frag("cmp_text", {"v": lit.value}, **slots)
        if lit.type == "str":
            v = f"^(?:{lit.value})$" if op in ("=~", "!~") else lit.value
            return self.frag("cmp_str", {"op": op, "v": v}, **slots)
        if lit.type == "bool":
            if op not in ("=", "!="):
                raise BadRequest(f"TraceQL: booleans compare with = or != only ({what} {op} {lit.value})")
            return self.frag("cmp_bool", {"op": op, "v": "true" if lit.value else "false"}, **slots)
        if lit.type == "int":
            return self.frag("cmp_int", {"op": op, "v": lit.value}, **slots)
        if lit.type == "float":
            return self.frag("cmp_float", {"op": op, "v": lit.value}, **slots)
        raise BadRequest(f"TraceQL: {what} compared with a {lit.type} literal is not supported")

    def root_test(self, op: str, lit: Lit) -> str:
        test = _root_test(op, lit)
        if test is None:
            raise BadRequest("TraceQL: nestedSetParent is supported only as a root test (nestedSetParent < 0, "
                             "= -1) or its negation (>= 0, != -1)")
        return self.frag({"root": "is_root", "child": "not_root", "all": "true", "none": "false"}[test])

    def cmp_intrinsic(self, name: str, op: str, lit: Lit) -> str:
        if name in ("duration", "traceDuration"):
            if lit.type not in ("duration", "int") or op in ("=~", "!~"):
                raise BadRequest(f"TraceQL: {name} compares with a duration (e.g. 100ms) using = != > >= < <=")
            col = self.frag("col_duration" if name == "duration" else "col_trace_duration")
            return self.frag("cmp_ns", {"op": op, "v": int(lit.value)}, COL=col)
        if name == "nestedSetParent":
            return self.root_test(op, lit)
        if name == "status":
            if lit.type != "status" or op not in ("=", "!="):
                raise BadRequest("TraceQL: status compares with error, ok or unset using = or !=")
            return self.frag("cmp_status", {"op": op, "v": lit.value.upper()})
        if name == "kind":
            if lit.type != "kind" or op not in ("=", "!="):
                raise BadRequest("TraceQL: kind compares with unspecified, internal, server, client, producer "
                                 "or consumer using = or !=")
            return self.frag("cmp_span_kind", {"op": op, "v": lit.value.upper()})
        if lit.type not in ("str", "nil", "text"):
            raise BadRequest(f"TraceQL: {name} compares with a string")
        if name in ID_INTRINSICS and op in ("=", "!=") and lit.type == "str":
            lit = Lit("str", lit.value.lower())
        kind = self.frag("kind_string")
        if name in ("event:name", "link:traceID", "link:spanID"):
            x = self.frag("x")
            inner = self.typed(op, lit, self.frag("true"), x, kind, name, arrays=False)
            wrap = {"event:name": "event_names_any", "link:traceID": "link_trace_ids_any",
                    "link:spanID": "link_span_ids_any"}[name]
            return self.frag(wrap, A=inner)
        column = TEXT_INTRINSICS.get(name)
        if column is None:
            raise BadRequest(f"TraceQL: the intrinsic {name} is not supported in comparisons")
        return self.typed(op, lit, self.frag("true"), self.frag(column), kind, name, arrays=False)


_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


def _root_test(op: str, lit: Lit) -> str | None:
    """Which spans ``nestedSetParent op lit`` selects: Tempo numbers a root span's parent -1 and any
    other span's from 1 up. "root", "child", "all", "none", or None when it depends on the numbering."""
    if lit.type != "int" or op not in _OPS:
        return None
    root = _OPS[op](-1, lit.value)
    child = {_OPS[op](1, lit.value), _OPS[op](1 << 62, lit.value)}
    if len(child) != 1:
        return None
    return {(True, True): "all", (True, False): "root", (False, True): "child", (False, False): "none"}[
        (root, child.pop())]


def leaves_of(e: Any) -> list[Filter]:
    """The spanset filters of a spanset expression, left to right."""
    if isinstance(e, Filter):
        return [e]
    assert isinstance(e, SpansetOp)
    return leaves_of(e.lhs) + leaves_of(e.rhs)


def comparisons(e: Any) -> list[Cmp]:
    """The comparisons of a field expression, left to right."""
    if e is None or isinstance(e, BoolConst):
        return []
    if isinstance(e, (And, Or)):
        return comparisons(e.lhs) + comparisons(e.rhs)
    if isinstance(e, Not):
        return comparisons(e.expr)
    assert isinstance(e, Cmp)
    return [e]


def operands_of(e: Any) -> list[Operand]:
    """The attributes and intrinsics compared in a field expression."""
    return [c.lhs for c in comparisons(e)]
