"""A hand-written TraceQL parser (no maintained TraceQL parser exists for Python).

Grammar (EBNF; precedence low to high: spanset ``||``, spanset ``&&``, structural operators; in
field expressions ``||``, ``&&``, unary ``!``, comparison)::

    query       = spansets { "|" stage } [ "|" metrics ] ;
    spansets    = sp_and { "||" sp_and } ;
    sp_and      = sp_struct { "&&" sp_struct } ;
    sp_struct   = sp_primary { ( ">" | ">>" | "<" | "<<" | "~" ) sp_primary } ;
    sp_primary  = "{" [ field ] "}" | "(" spansets ")" ;
    field       = f_and { "||" f_and } ;
    f_and       = f_not { "&&" f_not } ;
    f_not       = "!" f_not | "(" field ")" | comparison | "true" | "false" ;
    comparison  = operand cmp_op operand ;          (one side an attribute or intrinsic,
                                                     the other a literal)
    cmp_op      = "=" | "!=" | ">" | ">=" | "<" | "<=" | "=~" | "!~" ;
    operand     = attribute | intrinsic | literal ;
    attribute   = [ "span" | "resource" | "event" | "link" | "instrumentation" ] "." name ;
    name        = chars up to whitespace or an operator | '"' quoted '"' ;
    intrinsic   = "name" | "status" | "statusMessage" | "kind" | "duration" | "rootName"
                | "rootServiceName" | "traceDuration" | "event:name" | "link:traceID"
                | "link:spanID" | "span:id" | "span:parentID" | "trace:id"
                | "instrumentation:name" | "instrumentation:version" | "span:name" | ... ;
    literal     = string | [ "-" ] int | [ "-" ] float | duration | "true" | "false" | "nil"
                | "error" | "ok" | "unset" | "unspecified" | "internal" | "server" | "client"
                | "producer" | "consumer" ;
    stage       = "{" [ field ] "}" | aggregate cmp_op literal | "by" "(" operand_list ")"
                | "select" "(" operand_list ")" | "coalesce" "(" ")" ;
    aggregate   = "count" "(" ")" | ( "avg" | "min" | "max" | "sum" ) "(" operand ")" ;
    metrics     = ( "rate" | "count_over_time" ) "(" ")" [ by ]
                | ( "min_over_time" | "max_over_time" | "avg_over_time" | "sum_over_time"
                  | "histogram_over_time" ) "(" operand ")" [ by ]
                | "quantile_over_time" "(" operand { "," number } ")" [ by ] ;
    by          = "by" "(" operand_list ")" ;

Bounds on hostile input (each a 400 naming the limit): the query text (:data:`MAX_QUERY_LEN`),
nesting depth (:data:`MAX_DEPTH`), comparisons (:data:`MAX_CONDITIONS`), spanset filters
(:data:`MAX_SPANSETS`) and a regex's length (:data:`MAX_REGEX_LEN`). Anything outside the grammar
(negated structural operators, ``topk``, ``with(...)``, arithmetic, ``parent.`` scope...) is a 400
that names the construct.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import BadRequest
from ..lexer import lex
from ..timeparse import NS

MAX_QUERY_LEN = 8 * 1024
MAX_DEPTH = 16
MAX_CONDITIONS = 64
MAX_SPANSETS = 16
MAX_REGEX_LEN = 1024

SCOPES = ("span", "resource", "event", "link", "instrumentation")
CMP_OPS = ("=", "!=", ">", ">=", "<", "<=", "=~", "!~")
STRUCT_OPS = (">", ">>", "<", "<<", "~")
STATUS = ("error", "ok", "unset")
KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
# Intrinsic spellings -> canonical name.
INTRINSICS = {
    "name": "name", "span:name": "name",
    "status": "status", "span:status": "status",
    "statusMessage": "statusMessage", "span:statusMessage": "statusMessage",
    "kind": "kind", "span:kind": "kind",
    "duration": "duration", "span:duration": "duration",
    "rootName": "rootName", "trace:rootName": "rootName",
    "rootServiceName": "rootServiceName", "trace:rootService": "rootServiceName",
    "traceDuration": "traceDuration", "trace:duration": "traceDuration",
    "event:name": "event:name",
    "link:traceID": "link:traceID", "link:spanID": "link:spanID",
    "span:id": "span:id", "span:parentID": "span:parentID", "trace:id": "trace:id",
    "instrumentation:name": "instrumentation:name", "instrumentation:version": "instrumentation:version",
    # Only as "is a root span" (< 0, = -1) or not: what Grafana's Traces Drilldown asks.
    "nestedSetParent": "nestedSetParent",
}
# Intrinsics known to Tempo that we do not serve.
UNSUPPORTED_INTRINSICS = ("event:timeSinceStart", "nestedSetLeft", "nestedSetRight",
                          "span:childCount", "childCount", "parent")
AGGREGATES = ("count", "avg", "min", "max", "sum")
METRICS_FUNCS = ("rate", "count_over_time", "min_over_time", "max_over_time", "avg_over_time",
                 "sum_over_time", "quantile_over_time", "histogram_over_time")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}


@dataclass(frozen=True)
class Lit:
    """A literal: ``type`` is str, int, float, bool, duration (ns), status, kind or nil (and text:
    a regex over the value's text whatever its kind, which only the legacy tags search builds)."""

    type: str
    value: Any


@dataclass(frozen=True)
class Attr:
    scope: str  # "" (unscoped), span, resource, event, link, instrumentation
    name: str

    def label(self) -> str:
        return f"{self.scope}.{self.name}" if self.scope else f".{self.name}"


@dataclass(frozen=True)
class Intrinsic:
    name: str

    def label(self) -> str:
        return self.name


Operand = Union[Attr, Intrinsic]


@dataclass(frozen=True)
class Cmp:
    lhs: Operand
    op: str
    rhs: Lit


@dataclass(frozen=True)
class BoolConst:
    value: bool


@dataclass(frozen=True)
class And:
    lhs: Any
    rhs: Any


@dataclass(frozen=True)
class Or:
    lhs: Any
    rhs: Any


@dataclass(frozen=True)
class Not:
    expr: Any


@dataclass(frozen=True)
class Filter:
    """A spanset filter ``{ expr }``; ``expr`` None is ``{}`` (every span)."""

    expr: Any


@dataclass(frozen=True)
class SpansetOp:
    op: str  # && || > >> < << ~
    lhs: Any
    rhs: Any


@dataclass(frozen=True)
class AggFilter:
    func: str
    arg: Operand | None
    op: str
    value: Lit


@dataclass(frozen=True)
class By:
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class Select:
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class Metrics:
    func: str
    arg: Operand | None
    quantiles: tuple[float, ...]
    by: tuple[Operand, ...]


@dataclass
class Query:
    spansets: Any
    stages: list[Any] = field(default_factory=list)
    metrics: Metrics | None = None


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<attr>(?:span|resource|event|link|instrumentation|parent)?\.(?:"(?:[^"\\]|\\.)*"|[^\s{}()=!<>~&|,"]+))
  | (?P<dur>[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h)(?![A-Za-z0-9_]))
  | (?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)
  | (?P<op>=~|!~|!=|>=|<=|>>|<<|&&|\|\||[{}()=<>~!|,\-+*/%^])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_:]*)
""", re.X)


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    out, i, body = [], 0, text[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_QUERY_LEN:
        raise BadRequest(f"TraceQL query longer than {MAX_QUERY_LEN} characters")
    tokens, stuck = lex(_TOKEN, text)
    if stuck is not None:
        raise BadRequest(f"TraceQL: unexpected character {text[stuck]!r} at {stuck}")
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0
        self.conditions = 0
        self.spansets = 0

    # -- token helpers
    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def next(self) -> tuple[str, str]:
        t = self.peek()
        self.i += 1
        return t

    def at(self, value: str) -> bool:
        kind, v = self.peek()
        return kind in ("op", "ident") and v == value

    def expect(self, value: str) -> None:
        kind, v = self.next()
        if v != value or kind not in ("op", "ident"):
            raise BadRequest(f"TraceQL: expected {value!r}, found {v or 'end of query'!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise BadRequest(f"TraceQL: nesting deeper than {MAX_DEPTH} levels")

    def leave(self) -> None:
        self.depth -= 1

    # -- query
    def query(self) -> Query:
        q = Query(self.spanset_or())
        while self.at("|"):
            self.next()
            kind, v = self.peek()
            if kind == "ident" and v in METRICS_FUNCS:
                q.metrics = self.metrics()
                break
            q.stages.append(self.stage())
        if self.at("with"):
            self.hints()
        kind, v = self.peek()
        if kind != "eof":
            after = self.peek(1)[1] if v == "|" else v
            if after in ("topk", "bottomk", "compare"):
                raise BadRequest(f"TraceQL: '{after}' is not supported")
            raise BadRequest(f"TraceQL: unexpected {v!r} after the query")
        return q

    def hints(self) -> None:
        """``with(key = value, ...)``: query hints (sampling, exemplars) that change no answer here:
        read and ignored."""
        self.next()
        self.expect("(")
        while not self.at(")"):
            kind, v = self.next()
            if kind != "ident":
                raise BadRequest(f"TraceQL: with(...) expects name = value hints, found {v or 'end of query'!r}")
            self.expect("=")
            self.operand_or_literal()
            if not self.at(","):
                break
            self.next()
        self.expect(")")

    # -- spanset expressions
    def spanset_or(self) -> Any:
        lhs = self.spanset_and()
        while self.at("||"):
            self.next()
            lhs = SpansetOp("||", lhs, self.spanset_and())
        return lhs

    def spanset_and(self) -> Any:
        lhs = self.spanset_struct()
        while self.at("&&"):
            self.next()
            lhs = SpansetOp("&&", lhs, self.spanset_struct())
        return lhs

    def spanset_struct(self) -> Any:
        lhs = self.spanset_primary()
        while True:
            kind, v = self.peek()
            if kind == "op" and v == "!" and self.peek(1)[1] in (">", ">>", "<", "<<", "~"):
                raise BadRequest(f"TraceQL: the negated structural operator '!{self.peek(1)[1]}' is not supported")
            if kind == "op" and v in STRUCT_OPS:
                self.next()
                lhs = SpansetOp(v, lhs, self.spanset_primary())
                continue
            if kind == "op" and v == "&>":
                raise BadRequest("TraceQL: union structural operators are not supported")
            return lhs

    def spanset_primary(self) -> Any:
        kind, v = self.peek()
        self.enter()
        try:
            if v == "{" and kind == "op":
                self.next()
                self.spansets += 1
                if self.spansets > MAX_SPANSETS:
                    raise BadRequest(f"TraceQL: more than {MAX_SPANSETS} spanset filters")
                if self.at("}"):
                    self.next()
                    return Filter(None)
                expr = self.field_or()
                self.expect("}")
                return Filter(expr)
            if v == "(" and kind == "op":
                self.next()
                inner = self.spanset_or()
                self.expect(")")
                return inner
            if kind == "op" and v in ("-", "+", "*", "/", "%", "^"):
                raise BadRequest(f"TraceQL: arithmetic ('{v}') is not supported")
            raise BadRequest(f"TraceQL: expected '{{', found {v or 'end of query'!r}")
        finally:
            self.leave()

    # -- field expressions
    def field_or(self) -> Any:
        lhs = self.field_and()
        while self.at("||"):
            self.next()
            lhs = Or(lhs, self.field_and())
        return lhs

    def field_and(self) -> Any:
        lhs = self.field_not()
        while self.at("&&"):
            self.next()
            lhs = And(lhs, self.field_not())
        return lhs

    def field_not(self) -> Any:
        self.enter()
        try:
            if self.at("!"):
                self.next()
                return Not(self.field_not())
            if self.at("("):
                self.next()
                e = self.field_or()
                self.expect(")")
                return e
            kind, v = self.peek()
            if kind == "ident" and v in ("true", "false") and self.peek(1)[1] not in CMP_OPS:
                self.next()
                return BoolConst(v == "true")
            return self.comparison()
        finally:
            self.leave()

    def comparison(self) -> Cmp:
        lhs = self.operand_or_literal()
        kind, op = self.next()
        if kind != "op" or op not in CMP_OPS:
            if kind == "op" and op in ("+", "-", "*", "/", "%", "^"):
                raise BadRequest(f"TraceQL: arithmetic ('{op}') is not supported")
            raise BadRequest(f"TraceQL: expected a comparison operator after {_show(lhs)}, "
                             f"found {op or 'end of query'!r}")
        rhs = self.operand_or_literal()
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise BadRequest(f"TraceQL: more than {MAX_CONDITIONS} comparisons")
        if isinstance(lhs, Lit) and not isinstance(rhs, Lit):
            lhs, rhs, op = rhs, lhs, _FLIP.get(op, op)
            if op in ("=~", "!~"):
                raise BadRequest("TraceQL: a regex must be on the right of =~ / !~")
        if isinstance(lhs, Lit) or not isinstance(rhs, Lit):
            raise BadRequest(f"TraceQL: comparisons need an attribute or intrinsic on one side and a "
                             f"literal on the other ({_show(lhs)} {op} {_show(rhs)})")
        if op in ("=~", "!~"):
            if rhs.type != "str":
                raise BadRequest(f"TraceQL: {op} needs a string regex")
            if len(rhs.value) > MAX_REGEX_LEN:
                raise BadRequest(f"TraceQL: regex longer than {MAX_REGEX_LEN} characters")
        return Cmp(lhs, op, rhs)

    def operand_or_literal(self) -> Operand | Lit:
        kind, v = self.next()
        if kind == "attr":
            return _attribute(v)
        if kind == "str":
            return Lit("str", _unquote(v))
        if kind == "dur":
            return Lit("duration", _duration(v))
        if kind == "num":
            return _number(v, 1)
        if kind == "op" and v == "-":
            kind2, v2 = self.next()
            if kind2 == "num":
                return _number(v2, -1)
            if kind2 == "dur":
                return Lit("duration", -_duration(v2))
            raise BadRequest("TraceQL: '-' must precede a number")
        if kind == "ident":
            if v in INTRINSICS:
                return Intrinsic(INTRINSICS[v])
            if v in UNSUPPORTED_INTRINSICS:
                raise BadRequest(f"TraceQL: the intrinsic '{v}' is not supported")
            if v in ("true", "false"):
                return Lit("bool", v == "true")
            if v == "nil":
                return Lit("nil", None)
            if v in STATUS:
                return Lit("status", v)
            if v in KINDS:
                return Lit("kind", v)
            raise BadRequest(f"TraceQL: unknown identifier {v!r} (attributes are written "
                             f"'.{v}', 'span.{v}' or 'resource.{v}')")
        raise BadRequest(f"TraceQL: expected an attribute, intrinsic or literal, found {v or 'end of query'!r}")

    def operand(self) -> Operand:
        o = self.operand_or_literal()
        if isinstance(o, Lit):
            raise BadRequest(f"TraceQL: expected an attribute or intrinsic, found {_show(o)}")
        return o

    def operand_list(self) -> tuple[Operand, ...]:
        self.expect("(")
        out = [self.operand()]
        while self.at(","):
            self.next()
            out.append(self.operand())
        self.expect(")")
        return tuple(out)

    # -- pipeline stages
    def stage(self) -> Any:
        kind, v = self.peek()
        if kind == "op" and v == "{":
            f = self.spanset_primary()
            return f
        if kind != "ident":
            raise BadRequest(f"TraceQL: expected a pipeline stage after '|', found {v or 'end of query'!r}")
        self.next()
        if v in AGGREGATES:
            self.expect("(")
            arg = None
            if v != "count":
                arg = self.operand()
            self.expect(")")
            kind, op = self.next()
            if kind != "op" or op not in ("=", "!=", ">", ">=", "<", "<="):
                raise BadRequest(f"TraceQL: {v}() must be compared with a value in a pipeline")
            value = self.operand_or_literal()
            if not isinstance(value, Lit) or value.type not in ("int", "float", "duration"):
                raise BadRequest(f"TraceQL: {v}() must be compared with a number or a duration")
            return AggFilter(v, arg, op, value)
        if v == "by":
            return By(self.operand_list())
        if v == "select":
            return Select(self.operand_list())
        if v == "coalesce":
            self.expect("(")
            self.expect(")")
            return By(())
        raise BadRequest(f"TraceQL: the pipeline stage '{v}' is not supported")

    def metrics(self) -> Metrics:
        _, func = self.next()
        self.expect("(")
        arg: Operand | None = None
        quantiles: list[float] = []
        if func in ("rate", "count_over_time"):
            pass
        else:
            arg = self.operand()
            if func == "quantile_over_time":
                while self.at(","):
                    self.next()
                    kind, v = self.peek()
                    # `.5` reads like an attribute name; here it is the quantile 0.5.
                    q = Lit("float", float(self.next()[1])) if kind == "attr" and v[1:].isdigit() \
                        else self.operand_or_literal()
                    if not isinstance(q, Lit) or q.type not in ("int", "float") or not 0 <= q.value <= 1:
                        raise BadRequest("TraceQL: quantile_over_time quantiles are numbers in [0, 1]")
                    quantiles.append(float(q.value))
                if not quantiles:
                    raise BadRequest("TraceQL: quantile_over_time needs at least one quantile")
        self.expect(")")
        by: tuple[Operand, ...] = ()
        if self.at("by"):
            self.next()
            by = self.operand_list()
        return Metrics(func, arg, tuple(quantiles), by)


_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}


def _show(x: Any) -> str:
    if isinstance(x, Lit):
        return repr(x.value) if x.type == "str" else str(x.value)
    return x.label()


def _attribute(text: str) -> Attr:
    scope, _, name = text.partition(".")
    if scope == "parent":
        raise BadRequest("TraceQL: the 'parent.' scope is not supported")
    if name.startswith('"'):
        name = _unquote(name)
    if not name:
        raise BadRequest("TraceQL: empty attribute name")
    return Attr(scope, name)


def _duration(text: str) -> int:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", text)
    assert m is not None
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def _number(text: str, sign: int) -> Lit:
    if re.fullmatch(r"[0-9]+", text):
        v = sign * int(text)
        if not -(1 << 63) <= v < (1 << 63):
            raise BadRequest(f"TraceQL: integer {text} out of range")
        return Lit("int", v)
    f = sign * float(text)
    if not math.isfinite(f):
        raise BadRequest(f"TraceQL: number {text} out of range")
    return Lit("float", f)


def parse(text: str) -> Query:
    """Parse a TraceQL query; an empty query is ``{}``. Raises BadRequest naming what is wrong."""
    if not text.strip():
        return Query(Filter(None))
    return _Parser(text).query()


def parse_filter(text: str) -> Filter:
    """A single spanset filter (the ``q`` of tag and tag value searches)."""
    q = parse(text)
    if q.stages or q.metrics is not None or not isinstance(q.spansets, Filter):
        raise BadRequest("TraceQL: only a single spanset filter '{ ... }' is supported here")
    return q.spansets


def parse_operand(text: str) -> Operand:
    """One attribute or intrinsic (``.a``, ``span.a``, ``resource.a``, ``name``, ``status``...)."""
    p = _Parser(text)
    o = p.operand()
    if p.peek()[0] != "eof":
        raise BadRequest(f"TraceQL: {text[:100]!r} is not one attribute or intrinsic")
    return o
