"""End to end: the OpenTelemetry SDK exports to ``otelingest serve``; Jaeger, Prometheus and Loki
clients read it back through the query service the daemon runs."""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import httpx
import pytest

from daemon import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, clickhouse) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("e2e"), receivers=1, clickhouse_url=clickhouse.url,
                database=f"e2e_{uuid.uuid4().hex[:10]}") as d:
        yield d


def _provider(service: str, d: Daemon):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    p = TracerProvider(resource=Resource.create({"service.name": service, "service.namespace": "e2e"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{d.http_url}/v1/traces")))
    return p


def _wait(fetch, ok, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_sdk_data_through_every_query_api(daemon: Daemon) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import SpanKind

    # A frontend span whose child runs in the backend service: two providers, two exports.
    front, back = _provider("e2e-frontend", daemon), _provider("e2e-backend", daemon)
    with front.get_tracer("e2e").start_as_current_span("GET /cart", kind=SpanKind.SERVER) as parent:
        ctx = trace.set_span_in_context(parent)
        with back.get_tracer("e2e").start_as_current_span("load cart", context=ctx, kind=SpanKind.SERVER) as child:
            child.set_attribute("cart.items", 3)
    front.shutdown()
    back.shutdown()
    trace_id = format(parent.get_span_context().trace_id, "032x")

    resource = Resource.create({"service.name": "e2e-frontend"})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{daemon.http_url}/v1/logs")))
    logger = logs.get_logger("e2e.query")
    now = time.time_ns()
    logger.emit(timestamp=now, severity_number=SeverityNumber.INFO, severity_text="INFO",
                body="cart loaded for user 7")
    logger.emit(timestamp=now + 1, severity_number=SeverityNumber.ERROR, severity_text="ERROR",
                body="payment declined for user 7")
    logs.shutdown()

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{daemon.http_url}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meters.get_meter("e2e").create_counter("e2e.requests", unit="{request}")
    for _ in range(5):
        counter.add(1, {"route": "/cart"})
    meters.shutdown()  # final export

    db = daemon.database
    assert daemon.wait_count_where("otel_traces", "TraceId = unhex({t:String})", {"t": trace_id}, 2) == 2
    assert daemon.wait_count_where("otel_logs", "ServiceName = 'e2e-frontend'", {}, 2) == 2
    assert daemon.wait_count_where("otel_metrics", "MetricName = 'e2e.requests'", {}, 1) >= 1
    del db

    with httpx.Client(base_url=daemon.query_url, timeout=30) as http:
        # Jaeger: the trace with both services, child referencing the parent.
        r = http.get(f"/api/traces/{trace_id}")
        assert r.status_code == 200, r.text
        (t,) = r.json()["data"]
        spans = {s["operationName"]: s for s in t["spans"]}
        assert spans["load cart"]["references"] == [{
            "refType": "CHILD_OF", "traceID": trace_id,
            "spanID": format(parent.get_span_context().span_id, "016x")}]
        assert {p["serviceName"] for p in t["processes"].values()} == {"e2e-frontend", "e2e-backend"}
        assert {"key": "cart.items", "type": "string", "value": "3"} in spans["load cart"]["tags"]
        assert http.get("/api/services").json()["data"] == ["e2e-backend", "e2e-frontend"]
        deps = http.get("/api/dependencies", params={"endTs": int(time.time() * 1000) + 60_000}).json()["data"]
        assert deps == [{"parent": "e2e-frontend", "child": "e2e-backend", "callCount": 1}]

        # Loki: the line filter finds exactly the error line.
        now = time.time_ns()
        r = http.get("/loki/api/v1/query_range", params={
            "query": '{service_name="e2e-frontend"} |= "declined"', "start": str(now - 3600 * 10**9),
            "end": str(now + 60 * 10**9)})
        (stream,) = r.json()["data"]["result"]
        assert [v[1] for v in stream["values"]] == ["payment declined for user 7"]
        assert stream["stream"]["level"] == "error"

        # Prometheus: the SDK counter under its Prometheus name, with job from the resource.
        r = http.get("/api/v1/query", params={"query": 'e2e_requests_total{route="/cart"}',
                                              "time": time.time() + 30})
        (series,) = r.json()["data"]["result"]
        assert series["value"][1] == "5"
        assert series["metric"]["job"] == "e2e-frontend"
