"""A small, realistic data set inserted straight into the schema's tables for the query tests.

Everything is relative to ``T0`` (an hour boundary two hours ago) so windows are closed and the
expected values below are computed by hand from the same constants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

NS = 1_000_000_000
MS = 1_000_000
ZERO_SPAN = b"\0" * 8
ZERO_TRACE = b"\0" * 16

TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
ROOT_SPAN = bytes.fromhex("b7ad6b7169203331")
CHILD_SPAN = bytes.fromhex("00f067aa0ba902b7")
DB_SPAN = bytes.fromhex("1111222233334444")
JOB_SPAN = bytes.fromhex("5555666677778888")
ROOT_DURATION = 150_123_456  # ns -> 150123 us in Jaeger
CHILD_DURATION = 80_000_000
DB_DURATION = 20_500_000
JOB_DURATION = 5_000_000

STEP_S = 15
POINTS = 41  # 10 minutes of points every 15 s
HIST_BOUNDS = [10.0, 50.0, 100.0, 500.0]
HIST_STEP_COUNTS = [2, 4, 2, 2, 0]  # per 15 s, per bucket (last is +Inf)

FRONTEND_RES = {"service.name": "frontend", "service.namespace": "shop", "service.instance.id": "fe-1", "host.name": "h1"}
CHECKOUT_RES = {"service.name": "checkout", "service.instance.id": "co-1"}


def t0_ns() -> int:
    hour = 3600 * NS
    return (time.time_ns() // hour) * hour - 2 * hour


@dataclass
class Dataset:
    db: str
    t0: int


SPAN_COLUMNS = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "Flags", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
    "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Events.DroppedAttributesCount", "Links.TraceId", "Links.SpanId", "Links.TraceState",
    "Links.Attributes", "Links.Flags", "Links.DroppedAttributesCount",
]


def span(
    ts: int, trace: bytes, span_id: bytes, parent: bytes, name: str, kind: str, service: str,
    resource: dict[str, str], attrs: dict[str, str], duration: int, status: str = "UNSET", message: str = "",
    events: list[tuple[int, str, dict[str, str]]] = (), links: list[tuple[bytes, bytes, dict[str, str]]] = (),
) -> list[Any]:
    return [
        ts, trace, span_id, parent, "", 1, name, kind, service, resource, "io.opentelemetry.http", "1.2.0",
        attrs, duration, status, message,
        [e[0] for e in events], [e[1] for e in events], [e[2] for e in events], [0 for _ in events],
        [ln[0] for ln in links], [ln[1] for ln in links], ["" for _ in links], [ln[2] for ln in links],
        [1 for _ in links], [0 for _ in links],
    ]


def insert_rows(client: Any, db: str, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    client.insert(table, rows, column_names=columns, database=db)


def load_traces(client: Any, db: str, t0: int) -> None:
    # The parent (frontend) and its children (checkout) arrive in separate inserts, as from two SDKs.
    insert_rows(client, db, "otel_traces", SPAN_COLUMNS, [
        span(t0 + 1 * NS, TRACE_A, ROOT_SPAN, ZERO_SPAN, "GET /checkout", "SERVER", "frontend", FRONTEND_RES,
             {"http.method": "GET", "http.status_code": "200"}, ROOT_DURATION,
             events=[(t0 + 1 * NS + 10 * MS, "cache miss", {"cache.key": "cart:42"})]),
    ])
    insert_rows(client, db, "otel_traces", SPAN_COLUMNS, [
        span(t0 + 1 * NS + 20 * MS, TRACE_A, CHILD_SPAN, ROOT_SPAN, "charge", "SERVER", "checkout", CHECKOUT_RES,
             {"payment.method": "card"}, CHILD_DURATION, status="ERROR", message="card declined",
             links=[(TRACE_B, JOB_SPAN, {"link.reason": "batch"})]),
        span(t0 + 1 * NS + 30 * MS, TRACE_A, DB_SPAN, CHILD_SPAN, "SELECT orders", "CLIENT", "checkout", CHECKOUT_RES,
             {"db.system": "postgresql"}, DB_DURATION, status="OK"),
        span(t0 + 10 * NS, TRACE_B, JOB_SPAN, ZERO_SPAN, "batch-job", "INTERNAL", "checkout", CHECKOUT_RES,
             {"job.kind": "nightly"}, JOB_DURATION),
    ])


LOG_COLUMNS = [
    "Timestamp", "ObservedTimestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber",
    "ServiceName", "Body", "ResourceAttributes", "ScopeName", "LogAttributes",
]

# (offset seconds, service, severity text, severity number, body)
LOGS = [
    (1, "frontend", "INFO", 9, "user login ok"),
    (2, "frontend", "INFO", 9, "cart updated for user 42"),
    (3, "frontend", "ERROR", 17, "payment failed: card declined"),
    (4, "frontend", "ERROR", 17, '{"level":"error","msg":"db timeout","code":"500"}'),
    (5, "frontend", "WARN", 13, "method=GET status=404 path=/missing"),
    (6, "frontend", "WARN", 13, "method=POST status=200 path=/cart"),
    (2, "checkout", "INFO", 9, "charging card"),
    (3, "checkout", "ERROR", 17, "card declined by issuer"),
]


def load_logs(client: Any, db: str, t0: int) -> None:
    rows = []
    for off, service, sev, num, body in LOGS:
        res = FRONTEND_RES if service == "frontend" else CHECKOUT_RES
        trace = TRACE_A if "card" in body else ZERO_TRACE
        rows.append([t0 + off * NS, t0 + off * NS, trace, ZERO_SPAN, 0, sev, num, service, body, res,
                     "app.logger", {"logger": "main"}])
    insert_rows(client, db, "otel_logs", LOG_COLUMNS, rows)


METRIC_COLUMNS = [
    "TimeUnix", "StartTimeUnix", "MetricName", "MetricDescription", "MetricUnit", "MetricType",
    "AggregationTemporality", "IsMonotonic", "ServiceName", "ResourceAttributes", "Attributes", "Value",
    "Count", "Sum", "BucketCounts", "ExplicitBounds", "Exemplars.FilteredAttributes", "Exemplars.TimeUnix",
    "Exemplars.Value", "Exemplars.SpanId", "Exemplars.TraceId",
]


def metric_row(ts: int, t0: int, name: str, unit: str, mtype: str, temp: str, mono: bool, attrs: dict[str, str],
               value: float = 0.0, count: int = 0, total: float | None = None,
               buckets: list[int] = (), bounds: list[float] = (), desc: str = "",
               exemplars: list[tuple[int, float, bytes, bytes]] = ()) -> list[Any]:
    return [ts, t0, name, desc, unit, mtype, temp, mono, "frontend", FRONTEND_RES, attrs, value, count, total,
            list(buckets), list(bounds), [{"http.route": "/checkout"} for _ in exemplars],
            [e[0] for e in exemplars], [e[1] for e in exemplars], [e[3] for e in exemplars],
            [e[2] for e in exemplars]]


def counter_value(method: str, i: int) -> float:
    """http.server.requests: GET grows 10 per 15 s, POST 3 per 15 s, both from 1000."""
    return 1000.0 + (10 if method == "GET" else 3) * i


def load_metrics(client: Any, db: str, t0: int) -> None:
    rows = []
    for i in range(POINTS):
        ts = t0 + i * STEP_S * NS
        rows.append(metric_row(ts, t0, "system.memory.usage", "By", "Gauge", "Unspecified", False,
                               {"state": "used"}, value=100.0 + i, desc="Memory in use"))
        for method in ("GET", "POST"):
            rows.append(metric_row(ts, t0, "http.server.requests", "{request}", "Sum", "Cumulative", True,
                                   {"http.method": method}, value=counter_value(method, i), desc="Requests"))
        rows.append(metric_row(ts, t0, "jobs.processed", "1", "Sum", "Delta", True, {}, value=5.0))
        cum = [c * (i + 1) for c in HIST_STEP_COUNTS]
        rows.append(metric_row(ts, t0, "http.server.duration", "ms", "Histogram", "Cumulative", False,
                               {"http.method": "GET"}, count=sum(cum), total=100.0 * (i + 1),
                               buckets=cum, bounds=HIST_BOUNDS, desc="Request duration",
                               exemplars=[(ts - 5 * MS, 42.0, TRACE_A, ROOT_SPAN)] if i == 20 else []))
    insert_rows(client, db, "otel_metrics", METRIC_COLUMNS, rows)


def load_all(client: Any, db: str, t0: int | None = None) -> Dataset:
    t0 = t0_ns() if t0 is None else t0
    load_traces(client, db, t0)
    load_logs(client, db, t0)
    load_metrics(client, db, t0)
    return Dataset(db=db, t0=t0)


@dataclass
class QueryEnv:
    cfg: Any
    data: Dataset
    url: str
    client: Any


def make_env(clickhouse: Any, tmp_path: Any, retention: dict[str, int] | None = None,
             load: Any = None, **query_overrides: Any):
    """Migrated fresh database, loaded data set, query app served on a free port (context manager);
    ``retention`` overrides ``[retention]`` days; ``load(client, db)`` loads another data set than
    this module's."""
    import contextlib
    import uuid

    from conftest import free_port
    from otelingest import config as config_mod
    from otelingest.clickhouse import migrations as schema
    from otelingest.clickhouse.client import connect
    from otelingest.config import ClickHouseConfig
    from queryserver import serve

    @contextlib.contextmanager
    def env():
        db = f"q_{uuid.uuid4().hex[:12]}"
        cfg = config_mod.load(None, overrides={
            "data_dir": str(tmp_path / "data"),
            "clickhouse": {"url": clickhouse.url, "database": db, "pool_min": 1, "pool_max": 8},
            "query": {"port": free_port(), **query_overrides},
            "retention": retention or {},
        }, environ={})
        schema.migrate(cfg)
        client = connect(ClickHouseConfig(url=clickhouse.url), with_database=False)
        try:
            data = load(client, db) if load else load_all(client, db)
            with serve(cfg, cfg.query.port) as url:
                yield QueryEnv(cfg=cfg, data=data, url=url, client=client)
        finally:
            client.close()

    return env()


@pytest.fixture(scope="module")
def env(clickhouse, tmp_path_factory):
    """The data set served by a query app, shared by a test module's tests."""
    with make_env(clickhouse, tmp_path_factory.mktemp("q")) as e:
        yield e


@pytest.fixture
def http(env):
    """A client of the query app of ``env``."""
    with httpx.Client(base_url=env.url, timeout=30) as c:
        yield c
