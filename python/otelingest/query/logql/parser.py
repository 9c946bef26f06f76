"""A LogQL subset, parsed here and compiled to bound parameters of fixed SQL (sql/queries/loki_*.sql).

Log queries: ``{label op "value", ...}`` stream selectors (=, !=, =~, !~) over ``service_name``,
``severity_text``, ``level``/``detected_level`` (lower-case severity) and resource attributes
(``host_name`` matches ``host.name``); line filters ``|= != |~ !~``; ``| json`` and ``| logfmt``
parsers (top-level keys); label filters ``| key op value`` with = != =~ !~ > >= < <= ==;
``| drop ...`` (ignored: we never produce __error__ labels).
Metric queries: ``count_over_time``, ``rate``, ``bytes_over_time``, ``bytes_rate`` over a log query
and a range, ``sum/avg/min/max/count [by|without (...)]``, arithmetic with numbers and other metric
queries, ``vector(n)``. Everything else (line_format, unwrap, pattern/regexp parsers, topk, ...)
is a 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from ..lexer import lex
from ..timeparse import duration_ns

MAX_QUERY_LEN = 16 * 1024

STREAM_OPS = ("=", "!=", "=~", "!~")
LABEL_FILTER_OPS = ("=", "!=", "=~", "!~", ">", ">=", "<", "<=", "==")
RANGE_FUNCS = ("count_over_time", "rate", "bytes_over_time", "bytes_rate")
AGGS = ("sum", "avg", "min", "max", "count")
ARITH = ("+", "-", "*", "/", "%", "^")


@dataclass
class LogQuery:
    matchers: list[tuple[str, str, str]]  # (label, op, value)
    line_filters: list[tuple[str, str]] = field(default_factory=list)  # (op, text)
    parser: str = ""  # "", "json", "logfmt"
    label_filters: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class RangeAgg:
    func: str
    query: LogQuery
    range_ns: int


@dataclass
class VectorAgg:
    op: str
    by: bool
    labels: list[str]
    expr: Any


@dataclass
class Number:
    value: float


@dataclass
class VectorLit:
    value: float


@dataclass
class BinOp:
    op: str
    lhs: Any
    rhs: Any


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<dur>\[\s*[0-9][0-9a-zµ.]*\s*\])
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|[{}(),|=<>+\-*/%^])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
""", re.X)


def _unquote(tok: str) -> str:
    if tok.startswith("`"):
        return tok[1:-1]
    body = tok[1:-1]
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(escapes.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        if not text.strip():
            raise BadRequest("query is empty")
        if len(text) > MAX_QUERY_LEN:
            raise BadRequest("query too long")
        self.toks, stuck = lex(_TOKEN, text)
        if stuck is not None:
            raise BadRequest(f"parse error at position {stuck}: unexpected {text[stuck:stuck + 10]!r}")
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        t = self.peek()
        if (kind and t[0] != kind) or (value is not None and t[1] != value):
            want = value or kind
            raise BadRequest(f"parse error: expected {want!r}, got {t[1] or 'end of query'!r}")
        self.i += 1
        return t[1]

    def string(self) -> str:
        return _unquote(self.take("str"))

    # Precedence climbing; * / % bind tighter than + -, ^ tighter still; left-associative.
    def expr(self, min_prec: int = 1) -> Any:
        prec = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2, "^": 3}
        lhs = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in prec or prec[op] < min_prec:
                return lhs
            self.i += 1
            lhs = BinOp(op, lhs, self.expr(prec[op] + 1))

    def unary(self) -> Any:
        kind, val = self.peek()
        if kind == "num":
            self.i += 1
            return Number(float(val))
        if kind == "op" and val == "(":
            self.i += 1
            e = self.expr()
            self.take("op", ")")
            return e
        if kind == "op" and val == "{":
            return self.log_query()
        if kind == "ident":
            if val == "vector":
                self.i += 1
                self.take("op", "(")
                n = float(self.take("num"))
                self.take("op", ")")
                return VectorLit(n)
            if val in RANGE_FUNCS:
                self.i += 1
                self.take("op", "(")
                q = self.log_query()
                rng = self.take("dur")
                self.take("op", ")")
                ns = duration_ns(rng.strip("[] "), "query")
                if ns <= 0:
                    raise BadRequest("range must be positive")
                return RangeAgg(val, q, ns)
            if val in AGGS:
                self.i += 1
                by, labels = True, list[str]()
                grouping = self._grouping()
                if grouping:
                    by, labels = grouping
                self.take("op", "(")
                inner = self.expr()
                self.take("op", ")")
                grouping = self._grouping()
                if grouping:
                    by, labels = grouping
                if not isinstance(inner, (RangeAgg, VectorAgg, BinOp)):
                    raise BadRequest(f"{val}() needs a metric query such as count_over_time(...)")
                return VectorAgg(val, by, labels, inner)
            raise BadRequest(f"unsupported: {val}")
        raise BadRequest(f"parse error: unexpected {val or 'end of query'!r}")

    def _grouping(self) -> tuple[bool, list[str]] | None:
        kind, val = self.peek()
        if kind == "ident" and val in ("by", "without"):
            self.i += 1
            self.take("op", "(")
            labels = []
            while self.peek()[1] != ")":
                labels.append(self.take("ident"))
                if self.peek()[1] == ",":
                    self.i += 1
            self.take("op", ")")
            return val == "by", labels
        return None

    def log_query(self) -> LogQuery:
        self.take("op", "{")
        matchers = []
        while self.peek()[1] != "}":
            name = self.take("ident")
            op = self.take("op")
            if op not in STREAM_OPS:
                raise BadRequest(f"parse error: unsupported matcher operator {op!r}")
            matchers.append((name, op, self.string()))
            if self.peek()[1] == ",":
                self.i += 1
        self.take("op", "}")
        if not matchers:
            raise BadRequest("queries require at least one regexp or equality matcher that does not have an "
                             "empty-compatible value")
        q = LogQuery(matchers)
        while True:
            kind, val = self.peek()
            if kind == "op" and val in ("|=", "!=", "|~", "!~"):
                self.i += 1
                q.line_filters.append((val, self.string()))
                if self.peek() == ("ident", "or"):
                    raise BadRequest("unsupported: 'or' in line filters")
            elif kind == "op" and val == "|":
                self.i += 1
                kind, val = self.peek()
                if val in ("json", "logfmt"):
                    self.i += 1
                    if q.parser and q.parser != val:
                        raise BadRequest("unsupported: more than one parser")
                    if self.peek()[0] == "ident" and self.peek(1)[1] == "=":
                        raise BadRequest(f"unsupported: {val} with parameters")
                    q.parser = val
                elif val == "drop":
                    self.i += 1
                    while self.peek()[0] == "ident":
                        self.i += 1
                        if self.peek()[1] == ",":
                            self.i += 1
                elif kind == "ident" and self.peek(1)[0] == "op" and self.peek(1)[1] in LABEL_FILTER_OPS:
                    name = self.take("ident")
                    op = self.take("op")
                    nk, nv = self.peek()
                    if nk == "str":
                        value = self.string()
                    elif nk in ("num", "ident") and op in (">", ">=", "<", "<=", "==", "=", "!="):
                        self.i += 1
                        value = nv
                    else:
                        raise BadRequest(f"parse error: bad value in label filter on {name}")
                    if op in (">", ">=", "<", "<=") and nk == "ident":
                        value = str(duration_ns(nv, "query") / 1e9)
                    q.label_filters.append((name, op, value))
                else:
                    raise BadRequest(f"unsupported pipeline stage: {val!r}")
            else:
                return q

    def done(self) -> None:
        if self.peek()[0] != "eof":
            raise BadRequest(f"parse error: unexpected {self.peek()[1]!r}")


def parse(text: str) -> Any:
    p = _Parser(text)
    e = p.expr()
    p.done()
    _check_regexes(e)
    return e


def _check_regexes(e: Any) -> None:
    """Reject invalid regexes up front, so the answer does not depend on whether rows exist."""
    if isinstance(e, BinOp):
        _check_regexes(e.lhs)
        _check_regexes(e.rhs)
    elif isinstance(e, (VectorAgg,)):
        _check_regexes(e.expr)
    elif isinstance(e, RangeAgg):
        _check_regexes(e.query)
    elif isinstance(e, LogQuery):
        rxs = [v for _, op, v in e.matchers if op in ("=~", "!~")]
        rxs += [v for op, v in e.line_filters if op in ("|~", "!~")]
        rxs += [v for _, op, v in e.label_filters if op in ("=~", "!~")]
        for rx in rxs:
            try:
                re.compile(rx)
            except re.error as err:
                raise BadRequest(f"invalid regex {rx[:100]!r}: {err}") from None


def is_log_query(e: Any) -> bool:
    return isinstance(e, LogQuery)


# --- SQL parameters ---------------------------------------------------------------------------------

def anchored(rx: str) -> str:
    return f"^(?:{rx})$"


# Stream labels held in columns, and the loki/filter.sql slots of their matchers.
_COLUMN_SLOTS = {"service_name": "service", "severity_text": "severity", "level": "level", "detected_level": "level"}


@dataclass
class Filter:
    """A log query as SQL: the filter fragments (sql/queries/loki/filter*.sql, in order) and their
    bound parameters (every value as data, never SQL text)."""

    fragments: list[str]
    params: dict[str, Any]


def compile_filter(q: LogQuery | None) -> Filter:
    """The filter of ``q`` (None: every record of the window).

    Matchers on service, severity and level go to the plain predicates of loki/filter.sql (a
    service_name="..." to loki/filter_service.sql, for the primary key), one per label and operator,
    the rare rest to loki/filter_columns.sql; matchers on resource attributes to
    loki/filter_resource.sql (evaluated once per resource). Line and label filters get their
    fragments only when the query has some, so a query without them never reads Body.
    """
    p: dict[str, Any] = {"parser": q.parser if q else ""}
    for column in ("service", "severity", "level"):
        p.update({f"{column}_ne": [], f"{column}_re": "", f"{column}_nre": ""})
    p.update(severity_eq=[], level_eq=[])  # service equality has its own fragment
    fragments = ["loki/filter"]
    if q is None:
        return Filter(fragments, p)
    columns: list[tuple[str, str, str]] = []  # matchers on the columns beyond their slots
    resource: list[tuple[str, str, str]] = []
    nre: dict[str, list[str]] = {}
    for name, op, value in q.matchers:
        slot = _COLUMN_SLOTS.get(name)
        if slot is None:
            resource.append((name, op, value))
        elif op == "=" and slot == "service" and "service" not in p:
            p["service"] = value
            fragments.append("loki/filter_service")
        elif op == "=" and slot != "service" and not p[f"{slot}_eq"]:
            p[f"{slot}_eq"] = [value]
        elif op == "=":  # a second `=` on the label (both must hold)
            columns.append((name, op, value))
        elif op == "!=":
            p[f"{slot}_ne"].append(value)
        elif op == "=~" and not p[f"{slot}_re"]:
            p[f"{slot}_re"] = anchored(value)
        elif op == "=~":
            columns.append((name, op, value))
        else:  # !~: none may match, i.e. not their alternation
            nre.setdefault(slot, []).append(anchored(value))
    for column, rxs in nre.items():
        p[f"{column}_nre"] = "|".join(rxs)
    for fragment, prefix, matchers in (("loki/filter_columns", "col", columns),
                                       ("loki/filter_resource", "res", resource)):
        if matchers:
            fragments.append(fragment)
            p[f"{prefix}_k"] = [n for n, _, _ in matchers]
            p[f"{prefix}_op"] = [o for _, o, _ in matchers]
            p[f"{prefix}_v"] = [anchored(v) if o in ("=~", "!~") else v for _, o, v in matchers]
    if q.line_filters:
        fragments.append("loki/filter_line")
        for key in ("contains", "not_contains", "line_re", "line_nre"):
            p[key] = []
        for op, text in q.line_filters:
            key = {"|=": "contains", "!=": "not_contains", "|~": "line_re", "!~": "line_nre"}[op]
            p[key].append(text)
    if q.label_filters:
        fragments.append("loki/filter_labels")
        p["lf_k"] = [name for name, _, _ in q.label_filters]
        p["lf_op"] = ["=" if op == "==" else op for _, op, _ in q.label_filters]
        p["lf_v"] = [anchored(v) if op in ("=~", "!~") else v for _, op, v in q.label_filters]
    return Filter(fragments, p)
