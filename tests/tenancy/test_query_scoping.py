"""The lint of the read path's scoping (docs/tenancy.md, "Every read path scoped"): every read of a
tenant's table in a query file, and in any SQL written in Python, is followed by a WHERE whose
first condition is `TenantId = {tenant:String}`; the store refuses at run time what the lint would
flag (composed fragments included)."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import pytest

from otelingest.query.errors import QueryError
from otelingest.query.storage.scoping import TENANT_TABLES, unscoped_reads

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "sql" / "queries"
PACKAGE = ROOT / "python" / "otelingest"
# Every table with TenantId leading its sorting key (migration 0014).
EXPECTED_TABLES = {"otel_traces", "otel_trace_times", "otel_trace_index", "otel_logs", "otel_metrics", "otel_metrics_5m",
                   "otel_metrics_1h", "otel_span_stats_1h", "otel_service_dependencies_1h",
                   "otel_service_dependency_hours", "otel_metrics_metadata", "otel_metrics_exemplars",
                   "otel_prom_samples", "otel_prom_series"}
# A table named by the caller (the rollups) counts as a tenant table too.
READS_TENANT_TABLE = re.compile(r"\b(" + "|".join(EXPECTED_TABLES) + r")\b|\{table:Identifier\}")
# Operator, benchmark and background-job queries read system tables or every tenant on purpose
# (a job writes each tenant's rows itself); no API runs them.
NOT_API = ("ops", "bench", "jobs")


def query_files() -> list[tuple[str, str]]:
    out = []
    for path in sorted(QUERIES.rglob("*.sql")):
        rel = str(path.relative_to(QUERIES))
        if rel.split("/")[0] in NOT_API:
            continue
        out.append((rel, path.read_text()))
    return out


def test_the_tenant_tables_are_the_schema_s() -> None:
    assert set(TENANT_TABLES) == EXPECTED_TABLES


def test_the_lint_sees_the_query_files() -> None:
    reading = [rel for rel, text in query_files() if READS_TENANT_TABLE.search(text)]
    assert len(reading) > 40


def test_every_query_file_reading_a_tenant_table_is_scoped() -> None:
    assert {rel: unscoped_reads(text) for rel, text in query_files() if unscoped_reads(text)} == {}
    # A file naming a tenant table names the tenant parameter (a read the rule above missed).
    assert [rel for rel, text in query_files()
            if READS_TENANT_TABLE.search(text) and "{tenant:String}" not in text] == []


def test_the_rule_catches_what_it_should() -> None:
    ok = "SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} AND Timestamp > 0"
    assert unscoped_reads(ok) == []
    assert unscoped_reads("SELECT 1 FROM otel_logs WHERE Timestamp > 0 AND TenantId = {tenant:String}") == ["otel_logs"]
    assert unscoped_reads("SELECT 1 FROM otel_traces HAVING count() > 0") == ["otel_traces"]
    assert unscoped_reads("SELECT 1 FROM {table:Identifier} FINAL WHERE x = 1") == ["{table:Identifier}"]
    # A subquery unscoped inside a scoped one is caught.
    assert unscoped_reads(ok + " AND h IN (SELECT h FROM otel_logs WHERE x = 1)") == ["otel_logs"]
    # An OR outside parentheses would widen the read to every tenant; inside them it is the user's.
    assert unscoped_reads("SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} AND a = 1 OR b = 2") == ["otel_logs"]
    assert unscoped_reads("SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} OR 1 ORDER BY x") == ["otel_logs"]
    assert unscoped_reads("SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} AND (a OR b) ORDER BY c OR d") == []
    assert unscoped_reads("SELECT (SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} AND a) OR 1") == []
    assert unscoped_reads("SELECT 1 FROM otel_logs WHERE TenantId = {tenant:String} AND s = ' OR ' AND x") == []
    # Commented-out text does not count as a condition.
    assert unscoped_reads("SELECT 1 FROM otel_logs -- WHERE TenantId = {tenant:String}\nWHERE x = 1") == ["otel_logs"]


def _python_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module but its docstrings (f-strings' literal parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


SQL_WORDS = re.compile(r"\b(SELECT|FROM|WHERE|PREWHERE)\b")


def test_no_sql_is_written_in_the_query_service() -> None:
    """SQL lives in sql/ (read through sqlfiles), where the lint above sees it."""
    found = [f"{p.relative_to(PACKAGE)}:{line}" for p in sorted((PACKAGE / "query").rglob("*.py"))
             if p.name != "scoping.py"  # the rule's own patterns
             for line, s in _python_strings(p) if SQL_WORDS.search(s)]
    assert found == []


def test_no_python_sql_reads_a_tenant_table_unscoped() -> None:
    """Anywhere in the package but the benchmarks (which read whole tables on purpose)."""
    found = [f"{p.relative_to(PACKAGE)}:{line}" for p in sorted(PACKAGE.rglob("*.py"))
             if "bench" not in p.relative_to(PACKAGE).parts
             for line, s in _python_strings(p) if unscoped_reads(s)]
    assert found == []


def test_the_store_refuses_an_unscoped_query() -> None:
    from otelingest.config import QueryConfig
    from otelingest.query.storage.store import Store

    class NoPool:
        def client(self) -> None:
            raise AssertionError("an unscoped query must not reach ClickHouse")

    store = Store(NoPool(), QueryConfig())  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="otel_traces without its tenant condition"):
        asyncio.run(store.for_tenant("b").rows("SELECT count() FROM otel_traces WHERE 1"))
