"""End to end with the official OpenTelemetry Python SDK exporters (gRPC and HTTP/protobuf, with
and without gzip) against a running ``otelingest serve`` with the embedded ClickHouse: exact
counts, and the stored rows match what was sent, field by field."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from daemon import Daemon

VARIANTS = ["grpc", "grpc-gzip", "http", "http-gzip"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("sdk")) as d:
        yield d


def _exporters(kind: str, d: Daemon) -> tuple[Any, Any, Any]:
    if kind.startswith("grpc"):
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        comp = grpc.Compression.Gzip if kind.endswith("gzip") else grpc.Compression.NoCompression
        kw = dict(endpoint=d.grpc_endpoint, insecure=True, compression=comp)
        return OTLPSpanExporter(**kw), OTLPLogExporter(**kw), OTLPMetricExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HLog
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HMetric
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HSpan

    comp = Compression.Gzip if kind.endswith("gzip") else Compression.NoCompression
    return (HSpan(endpoint=f"{d.http_url}/v1/traces", compression=comp),
            HLog(endpoint=f"{d.http_url}/v1/logs", compression=comp),
            HMetric(endpoint=f"{d.http_url}/v1/metrics", compression=comp))


def _resource(kind: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": f"sdk-{kind}", "deployment.environment": "test"})


@pytest.mark.parametrize("kind", VARIANTS)
def test_traces(daemon: Daemon, kind: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span_exporter, _, _ = _exporters(kind, daemon)
    provider = TracerProvider(resource=_resource(kind))
    provider.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=50, schedule_delay_millis=50))
    tracer = provider.get_tracer("e2e.tests", "1.2.3")
    sent: dict[str, Any] = {}
    for n in range(120):
        with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
            parent.set_attribute("http.route", f"/items/{n}")
            parent.set_attribute("n", n)
            parent.add_event("checkpoint", {"step": "one"})
            with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
                child.set_status(Status(StatusCode.ERROR, "boom"))
        sent[format(parent.get_span_context().span_id, "016x")] = parent
        sent[format(child.get_span_context().span_id, "016x")] = child
    provider.shutdown()

    service = f"sdk-{kind}"
    assert daemon.wait_count_where("otel_traces", "ServiceName = {s:String}", {"s": service}, 240) == 240
    rows = daemon.client().query(
        "SELECT hex(SpanId), hex(TraceId), hex(ParentSpanId), SpanName, toString(SpanKind), toString(StatusCode),"
        " StatusMessage, toUnixTimestamp64Nano(Timestamp), Duration, SpanAttributes, ResourceAttributes['deployment.environment'],"
        " ScopeName, ScopeVersion, Events.Name, Events.Attributes"
        " FROM otel.otel_traces WHERE ServiceName = {s:String}", parameters={"s": service},
    ).result_rows
    assert len({r[0] for r in rows}) == 240
    for span_id, trace_id, parent_id, name, skind, status, msg, ts, duration, attrs, env, scope, scope_v, ev_names, ev_attrs in rows:
        span = sent[span_id.lower()]
        ctx = span.get_span_context()
        assert trace_id.lower() == format(ctx.trace_id, "032x")
        assert name == span.name
        assert ts == span.start_time
        assert duration == span.end_time - span.start_time
        assert (scope, scope_v, env) == ("e2e.tests", "1.2.3", "test")
        if name == "parent":
            assert parent_id == "0" * 16
            assert skind == "SERVER" and status == "UNSET" and msg == ""
            assert attrs == {"http.route": span.attributes["http.route"], "n": str(span.attributes["n"])}
            assert (ev_names, ev_attrs) == (["checkpoint"], [{"step": "one"}])
        else:
            assert parent_id.lower() == format(span.parent.span_id, "016x")
            assert (skind, status, msg) == ("CLIENT", "ERROR", "boom")


@pytest.mark.parametrize("kind", VARIANTS)
def test_logs(daemon: Daemon, kind: str) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry._logs import SeverityNumber

    _, log_exporter, _ = _exporters(kind, daemon)
    provider = LoggerProvider(resource=_resource(kind))
    provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, max_export_batch_size=40, schedule_delay_millis=50))
    logger = provider.get_logger("e2e.logs")
    t0 = time.time_ns()
    for n in range(100):
        logger.emit(timestamp=t0 + n, severity_number=SeverityNumber.WARN, severity_text="WARN",
                    body=f"message {n}", attributes={"n": n, "kind": kind})
    provider.shutdown()

    service = f"sdk-{kind}"
    assert daemon.wait_count_where("otel_logs", "ServiceName = {s:String}", {"s": service}, 100) == 100
    rows = daemon.client().query(
        "SELECT Body, toUnixTimestamp64Nano(Timestamp), SeverityText, SeverityNumber, LogAttributes, ScopeName"
        " FROM otel.otel_logs WHERE ServiceName = {s:String} ORDER BY Timestamp", parameters={"s": service},
    ).result_rows
    assert rows == [(f"message {n}", t0 + n, "WARN", 13, {"n": str(n), "kind": kind}, "e2e.logs") for n in range(100)]


@pytest.mark.parametrize("kind", VARIANTS)
def test_metrics(daemon: Daemon, kind: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    _, _, metric_exporter = _exporters(kind, daemon)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource(kind), metric_readers=[reader])
    meter = provider.get_meter("e2e.metrics")
    counter = meter.create_counter("e2e_requests", unit="1", description="requests")
    hist = meter.create_histogram("e2e_latency", unit="ms")
    for n in range(30):
        counter.add(n + 1, {"route": f"/r{n % 3}"})
        hist.record(float(n), {"route": "/h"})
    provider.shutdown()  # one collection, one export (force_flush too would export a second point)

    service = f"sdk-{kind}"
    # 3 counter series + 1 histogram series, one point each.
    assert daemon.wait_count_where("otel_metrics", "ServiceName = {s:String}", {"s": service}, 4) == 4
    client = daemon.client()
    sums = client.query(
        "SELECT Attributes['route'], Value, toString(MetricType), IsMonotonic, toString(AggregationTemporality), MetricUnit"
        " FROM otel.otel_metrics WHERE ServiceName = {s:String} AND MetricName = 'e2e_requests' ORDER BY 1",
        parameters={"s": service}).result_rows
    expected = {f"/r{k}": float(sum(n + 1 for n in range(30) if n % 3 == k)) for k in range(3)}
    assert sums == [(r, expected[r], "Sum", True, "Cumulative", "1") for r in sorted(expected)]
    (count, total, lo, hi, buckets), = client.query(
        "SELECT Count, Sum, Min, Max, arraySum(BucketCounts) FROM otel.otel_metrics"
        " WHERE ServiceName = {s:String} AND MetricName = 'e2e_latency'", parameters={"s": service}).result_rows
    assert (count, total, lo, hi, buckets) == (30, float(sum(range(30))), 0.0, 29.0, 30)


def test_metrics_endpoint_counts_received_items(daemon: Daemon) -> None:
    text = daemon.metrics_text()
    assert "otel_received_spans_total" in text
    assert daemon.metric("otel_storage_writes_total", table="otel_traces", status="ok") >= 1
