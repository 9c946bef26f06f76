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

from .errors import BadRequest
from .timeparse import duration_ns

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
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise BadRequest(f"parse error at position {pos}: unexpected {text[pos:pos + 10]!r}")
            kind = m.lastgroup or ""
            if kind != "ws":
                self.toks.append((kind, m.group()))
            pos = m.end()
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


def filter_params(q: LogQuery | None) -> dict[str, Any]:
    """Bound parameters for sql/queries/loki_filter.sql (every value as data, never SQL text)."""
    p: dict[str, Any] = {
        "m_k": [], "m_op": [], "m_v": [], "contains": [], "not_contains": [], "line_re": [], "line_nre": [],
        "parser": q.parser if q else "", "lf_k": [], "lf_op": [], "lf_v": [],
    }
    if q is None:
        return p
    for name, op, value in q.matchers:
        p["m_k"].append(name)
        p["m_op"].append(op)
        p["m_v"].append(anchored(value) if op in ("=~", "!~") else value)
    for op, text in q.line_filters:
        key = {"|=": "contains", "!=": "not_contains", "|~": "line_re", "!~": "line_nre"}[op]
        p[key].append(text)
    for name, op, value in q.label_filters:
        p["lf_k"].append(name)
        p["lf_op"].append("=" if op == "==" else op)
        p["lf_v"].append(anchored(value) if op in ("=~", "!~") else value)
    return p
