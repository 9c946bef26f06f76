"""Label matchers of a selector (= != =~ !~); regexes are run by ClickHouse's RE2 (Source.predicates),
never by Python's backtracking engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import promql_parser as pp

from ..errors import BadRequest
from .naming import format_le

MAX_REGEX_LEN = 1024


@dataclass(frozen=True)
class LabelMatcher:
    name: str
    op: str  # = != =~ !~
    value: str

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    def validate(self) -> None:
        if self.is_regex:
            if len(self.value) > MAX_REGEX_LEN:
                raise BadRequest(f"regex for label {self.name} longer than {MAX_REGEX_LEN}")
            try:
                re.compile(self.value)
            except re.error as e:
                raise BadRequest(f"invalid regex {self.value!r}: {e}") from None

    def matches_empty(self) -> bool:
        if self.is_regex:  # the empty string cannot make a backtracking engine blow up
            return (re.fullmatch(self.value, "") is not None) == (self.op == "=~")
        return ("" == self.value) == (self.op == "=")

    def compile(self, regex_matches: frozenset[str] | None = None) -> Callable[[str], bool]:
        """The matcher as a predicate; a regex one needs the set of candidate values it matched
        (computed by ClickHouse's RE2 in :meth:`Source.predicates`), never Python's backtracking re."""
        if self.is_regex:
            if regex_matches is None:
                raise AssertionError("regex matchers are evaluated through Source.predicates")
            if self.op == "=~":
                return lambda s: s in regex_matches
            return lambda s: s not in regex_matches
        if self.op == "=":
            return lambda s: s == self.value
        return lambda s: s != self.value


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def matchers_of(vs: pp.VectorSelector) -> list[LabelMatcher]:
    if vs.matchers.or_matchers:
        raise BadRequest("unsupported: 'or' inside a selector")
    out = [LabelMatcher(m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers]
    if vs.name:
        out.append(LabelMatcher("__name__", "=", vs.name))
    for m in out:
        m.validate()
    if all(m.matches_empty() for m in out):
        raise BadRequest("vector selector must contain at least one non-empty matcher")
    return out


def le_label_sets(rows: list[tuple[Any, ...]], bounds_col: int) -> list[dict[str, str]]:
    """Every `le` value the rows' histogram bounds produce, as label sets (for le matchers)."""
    les = {"+Inf"}
    for r in rows:
        les.update(format_le(float(b)) for b in r[bounds_col])
    return [{"le": v} for v in sorted(les)]


def labels_match(labels: dict[str, str], fns: list[tuple[str, Callable[[str], bool]]]) -> bool:
    return all(fn(labels.get(name, "")) for name, fn in fns)
