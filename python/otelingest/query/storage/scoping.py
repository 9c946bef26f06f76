"""Which SQL reads a tenant's tables without naming the tenant (docs/tenancy.md, "Every read path
scoped"): the rule the lint over ``sql/queries/`` checks, and the store checks again on every query
it runs (composed fragments included), so a query that forgot its tenant fails instead of showing
one tenant another's rows.

The rule: every ``FROM <tenant table>`` (or ``FROM {table:Identifier}``, a rollup chosen by the
service) is followed by a ``WHERE`` whose first condition is ``TenantId = {tenant:String}``, so the
tenant is one bound value and the sorting key's first column prunes every other tenant's granules;
and that WHERE has no ``OR`` outside parentheses (``TenantId = t AND a OR b`` reads every tenant's
``b``).
"""

from __future__ import annotations

import re

# Every table carrying TenantId first in its sorting key (migration 0014).
TENANT_TABLES = (
    "otel_traces", "otel_trace_times", "otel_trace_index", "otel_logs", "otel_metrics", "otel_metrics_5m",
    "otel_metrics_1h", "otel_span_stats_1h", "otel_service_dependencies_1h", "otel_service_dependency_hours",
    "otel_metrics_metadata", "otel_metrics_exemplars", "otel_prom_samples", "otel_prom_series",
)
TENANT_CONDITION = "TenantId = {tenant:String}"
_TABLE = r"(?:" + "|".join(TENANT_TABLES) + r"|\{table:Identifier\})"
READS = re.compile(r"\b(?:FROM|JOIN)\s+(" + _TABLE + r")(?![\w.])")
NAMES_TABLE = re.compile(r"\b(" + "|".join(TENANT_TABLES) + r")\b|\{table:Identifier\}")
_WHERE = re.compile(r"\bWHERE\s+")
_COMMENT = re.compile(r"--[^\n]*")
# Tokens of a WHERE clause: quoted strings (skipped), parentheses, and the words that end the clause
# or would widen it.
_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|[()]|\b(?:OR|GROUP|ORDER|LIMIT|HAVING|SETTINGS|UNION|WINDOW|FORMAT)\b")


def unscoped_reads(sql: str) -> list[str]:
    """The tables ``sql`` reads without ``WHERE TenantId = {tenant:String} ...`` right after (empty
    when every read is scoped)."""
    text = _COMMENT.sub("", sql)
    out = []
    for m in READS.finditer(text):
        w = _WHERE.search(text, m.end())
        if w is None or not text.startswith(TENANT_CONDITION, w.end()) or _widened(text, w.end()):
            out.append(m.group(1))
    return out


def _widened(text: str, at: int) -> bool:
    """Whether the WHERE clause starting at ``at`` has an OR outside parentheses."""
    depth = 0
    for t in _TOKEN.finditer(text, at):
        token = t.group(0)
        if token.startswith("'"):
            continue
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:  # the subquery holding this WHERE ends
                return False
        elif depth == 0:
            return token == "OR"
    return False
