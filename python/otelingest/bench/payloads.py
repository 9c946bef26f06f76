"""Seeded, realistic OTLP payloads shared by every benchmark.

Requests look like what an instrumented service fleet sends: a few hundred spans per request,
about 300 bytes per span, 5 resource attributes, ~8 span attributes, some span events; log
records with a message body and attributes; metric points of all five types. Every request has
unique trace/span ids and timestamps that advance request after request. Bodies are pre-encoded
protobuf bytes, so a benchmark measures only what it means to measure.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SEED = 20261124
SERVICES = ["checkout", "cart", "payment", "frontend", "shipping", "email", "ads", "recommendation"]
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz", "/api/orders"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
LOG_LINES = [
    "request completed", "cache miss for key {}", "retrying upstream call attempt {}",
    "user {} logged in", "payment authorized for order {}", "slow query took {} ms",
]


@dataclass(frozen=True)
class Payload:
    body: bytes
    items: int


def _s(v: str) -> AnyValue:
    return AnyValue(string_value=v)


def _kv(k: str, v: AnyValue) -> KeyValue:
    return KeyValue(key=k, value=v)


def _resource(rng: random.Random, service: str) -> Resource:
    return Resource(attributes=[
        _kv("service.name", _s(service)),
        _kv("service.version", _s(f"1.{rng.randrange(20)}.{rng.randrange(10)}")),
        _kv("host.name", _s(f"ip-10-0-{rng.randrange(256)}-{rng.randrange(256)}")),
        _kv("deployment.environment", _s("production")),
        _kv("telemetry.sdk.language", _s("python")),
    ])


class Generator:
    """Deterministic for a seed; each call yields a request with fresh ids and later timestamps."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.now = time.time_ns() - 3600 * 10**9

    def _ids(self, n: int) -> bytes:
        return self.rng.getrandbits(n * 8).to_bytes(n, "little")

    def traces(self, spans: int = 500) -> Payload:
        rng = self.rng
        per_trace = 10
        out: list[Span] = []
        for t in range((spans + per_trace - 1) // per_trace):
            trace_id = self._ids(16)
            root = self._ids(8)
            start = self.now + t * 1_000_000
            for i in range(min(per_trace, spans - len(out))):
                span_id = root if i == 0 else self._ids(8)
                route = rng.choice(ROUTES)
                dur = rng.randrange(50_000, 50_000_000)
                attrs = [
                    _kv("http.method", _s(rng.choice(METHODS))),
                    _kv("http.route", _s(route)),
                    _kv("http.status_code", AnyValue(int_value=rng.choice([200, 200, 200, 201, 404, 500]))),
                    _kv("net.peer.name", _s(f"svc-{rng.randrange(30)}.internal")),
                    _kv("net.peer.port", AnyValue(int_value=8080)),
                    _kv("user_agent.original", _s("Mozilla/5.0 (X11; Linux x86_64)")),
                    _kv("http.response_content_length", AnyValue(int_value=rng.randrange(100, 100_000))),
                    _kv("retry", AnyValue(bool_value=rng.random() < 0.05)),
                ]
                events = []
                if rng.random() < 0.2:
                    events.append(Span.Event(time_unix_nano=start + dur // 2, name="exception", attributes=[
                        _kv("exception.type", _s("TimeoutError")), _kv("exception.message", _s("upstream timed out")),
                    ]))
                out.append(Span(
                    trace_id=trace_id, span_id=span_id, parent_span_id=b"" if i == 0 else root,
                    name=f"{rng.choice(METHODS)} {route}", kind=Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start + i * 1000, end_time_unix_nano=start + i * 1000 + dur,
                    attributes=attrs, events=events,
                    status=Status(code=Status.STATUS_CODE_ERROR if rng.random() < 0.02 else Status.STATUS_CODE_UNSET),
                ))
        self.now += 1_000_000_000
        scope = InstrumentationScope(name="opentelemetry.instrumentation.flask", version="0.48b0")
        req = ExportTraceServiceRequest(resource_spans=[
            ResourceSpans(resource=_resource(rng, SERVICES[k]), scope_spans=[ScopeSpans(scope=scope, spans=out[k::4])])
            for k in range(4)
        ])
        return Payload(req.SerializeToString(), len(out))

    def logs(self, records: int = 500) -> Payload:
        rng = self.rng
        out = []
        for i in range(records):
            out.append(LogRecord(
                time_unix_nano=self.now + i * 1000, observed_time_unix_nano=self.now + i * 1000 + 500,
                severity_number=rng.choice([9, 9, 9, 13, 17]),  # type: ignore[arg-type]  # an enum value
                severity_text="INFO",
                body=_s(rng.choice(LOG_LINES).format(rng.randrange(100_000))),
                attributes=[_kv("code.function", _s("handle")), _kv("thread.id", AnyValue(int_value=rng.randrange(64))),
                            _kv("http.route", _s(rng.choice(ROUTES)))],
                trace_id=self._ids(16), span_id=self._ids(8), flags=1,
            ))
        self.now += 1_000_000_000
        scope = InstrumentationScope(name="logging")
        req = ExportLogsServiceRequest(resource_logs=[
            ResourceLogs(resource=_resource(rng, SERVICES[k]), scope_logs=[ScopeLogs(scope=scope, log_records=out[k::4])])
            for k in range(4)
        ])
        return Payload(req.SerializeToString(), len(out))

    def metrics(self, series: int = 100) -> Payload:
        """``series`` points of each of the five types (5 x series points)."""
        rng = self.rng
        t = self.now
        self.now += 1_000_000_000

        def attrs(i: int) -> list[KeyValue]:
            return [_kv("http.route", _s(ROUTES[i % len(ROUTES)])), _kv("instance", AnyValue(int_value=i))]

        metrics = [
            m.Metric(name="process.cpu.utilization", unit="1", gauge=m.Gauge(data_points=[
                m.NumberDataPoint(attributes=attrs(i), time_unix_nano=t, as_double=rng.random()) for i in range(series)])),
            m.Metric(name="http.server.requests", unit="{request}", sum=m.Sum(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True, data_points=[
                    m.NumberDataPoint(attributes=attrs(i), start_time_unix_nano=t - 10**12, time_unix_nano=t,
                                      as_int=rng.randrange(10**6)) for i in range(series)])),
            m.Metric(name="http.server.duration", unit="ms", histogram=m.Histogram(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[
                    m.HistogramDataPoint(attributes=attrs(i), time_unix_nano=t, count=100, sum=rng.random() * 1000,
                                         bucket_counts=[rng.randrange(20) for _ in range(11)],
                                         explicit_bounds=[5, 10, 25, 50, 75, 100, 250, 500, 750, 1000], min=0.1, max=900.0)
                    for i in range(series)])),
            m.Metric(name="rpc.duration", unit="ms", exponential_histogram=m.ExponentialHistogram(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[
                    m.ExponentialHistogramDataPoint(
                        attributes=attrs(i), time_unix_nano=t, count=50, sum=123.0, scale=3, zero_count=1,
                        positive=m.ExponentialHistogramDataPoint.Buckets(offset=2, bucket_counts=[rng.randrange(9) for _ in range(16)]))
                    for i in range(series)])),
            m.Metric(name="gc.pause", unit="s", summary=m.Summary(data_points=[
                m.SummaryDataPoint(attributes=attrs(i), time_unix_nano=t, count=10, sum=0.5, quantile_values=[
                    m.SummaryDataPoint.ValueAtQuantile(quantile=q, value=rng.random()) for q in (0.5, 0.9, 0.99)])
                for i in range(series)])),
        ]
        req = ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(
            resource=_resource(rng, "checkout"),
            scope_metrics=[m.ScopeMetrics(scope=InstrumentationScope(name="meter"), metrics=metrics)])])
        return Payload(req.SerializeToString(), 5 * series)


def trace_requests(n: int, spans: int = 500, seed: int = SEED) -> list[Payload]:
    g = Generator(seed)
    return [g.traces(spans) for _ in range(n)]


def log_requests(n: int, records: int = 500, seed: int = SEED) -> list[Payload]:
    g = Generator(seed)
    return [g.logs(records) for _ in range(n)]


def metric_requests(n: int, series: int = 100, seed: int = SEED) -> list[Payload]:
    g = Generator(seed)
    return [g.metrics(series) for _ in range(n)]


_HEX_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def as_otlp_json(payload: Payload, request_type: type) -> Payload:
    """The same request as OTLP/JSON, as the OTel JS exporter writes it (hex ids, camelCase)."""
    import base64
    import json

    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

    def fix(x: object, key: str = "") -> object:
        if isinstance(x, dict):
            return {k: fix(v, k) for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v, key) for v in x]
        if key in _HEX_ID_KEYS and isinstance(x, str):
            return base64.b64decode(x).hex()
        return x

    d = MessageToDict(request_type.FromString(payload.body))  # type: ignore[attr-defined]
    return Payload(json.dumps(fix(d)).encode(), payload.items)
