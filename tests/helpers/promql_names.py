"""PromQL checks shared by the dashboard and alert-rule tests: parse, and list the metric names used."""

from __future__ import annotations

import re

import promql_parser

from otelingest.selfmon.catalog import exported_sample_names

# Prometheus's own series that rules and dashboards may use besides the daemon's.
PROMETHEUS_SERIES = frozenset({"up"})

# Grafana's template variables, replaced by representative values before parsing.
_GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$table": ".*",
}


def expand_grafana(expr: str) -> str:
    for var, value in _GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown Grafana variable {leftover} in {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads; a ``__name__`` regex expands to the catalog names it matches.

    Raises:
        ValueError: the expression does not parse, or a selector matches no exported metric.
    """
    tree = promql_parser.parse(expr)
    names: set[str] = set()
    known = exported_sample_names() | PROMETHEUS_SERIES

    def visit(node: object) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name:
            names.add(node.name)
        for m in node.matchers.matchers:
            if m.name != "__name__":
                continue
            if m.op == promql_parser.MatchOp.Equal:
                names.add(m.value)
            elif m.op == promql_parser.MatchOp.Re:
                matched = {n for n in known if re.fullmatch(m.value, n)}
                if not matched:
                    raise ValueError(f"{m.value!r} matches no exported metric")
                names.update(matched)
            else:
                raise ValueError(f"negative __name__ matcher in {expr}")

    promql_parser.walk(tree, pre_visit=visit)
    if not names:
        raise ValueError(f"no metric in {expr}")
    return names


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - exported_sample_names() - PROMETHEUS_SERIES
