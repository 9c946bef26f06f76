"""Spans built with the official OpenTelemetry SDK for the Tempo API tests, stored the way the
daemon stores them (the SDK's OTLP encoder, then the native decoder's Native blocks).

Three services (frontend, checkout, payments; resource attributes of several kinds), six traces with
nested spans across services, errors, events, links and every attribute kind the SDK sends (string,
int, double, bool, bytes, arrays). Times are relative to ``T0`` (an hour boundary two hours ago).
The ids are fixed so tests assert exact trace and span ids. The layout, with start offsets and
durations in ms (trace start: T0 + 10 s per trace number):

    T1  s11 frontend GET /cart SERVER 0+200 {http.method=GET, http.status_code=200, http.route=/cart}
        └ s12 checkout load cart SERVER 10+120 OK {cart.items=3, cache.hit=true}
          └ s13 checkout SELECT cart CLIENT 20+30 {db.system=postgresql, db.rows=2.5}
    T2  s21 frontend POST /checkout SERVER 0+900 ERROR "upstream failed" {http.status_code=503, ...}
        └ s22 checkout charge SERVER 50+700 ERROR "card declined" {payment.amount=19.99} event exception
          ├ s23 payments authorize SERVER 100+500 {http.status_code="503" (a string), retry=true}
          └ s24 checkout SELECT orders CLIENT 60+20 OK {db.system=postgresql}
    T3  s31 frontend GET /health SERVER 0+2 {http.status_code=200} link -> T1/s11 {link.reason=follow}
    T4  s41 checkout nightly-report INTERNAL 0+5000 {job.kind=nightly, job.tags=[a,b], job.ids=[1,2]}
        └ s42 checkout render INTERNAL 100+1000 {template=report.html, payload=bytes}
          └ s43 checkout write PRODUCER 1200+200 {bytes.written=1024, ratio=0.5}
    T5  s51 payments refund SERVER 0+50 {http.method=DELETE, http.status_code=404} event audit
    T6  s61 frontend GET /cart SERVER 0+300 {http.status_code=500}
        └ s62 checkout load cart SERVER 10+250 ERROR "timeout" {cart.items=0, cache.hit=false}
          └ s63 checkout SELECT cart CLIENT 20+200 ERROR "timeout" {db.rows=0.0}
"""

from __future__ import annotations

from typing import Any

NS = 1_000_000_000
MS = 1_000_000

FRONTEND = {"service.name": "frontend", "deployment.environment": "prod", "host.cores": 8}
CHECKOUT = {"service.name": "checkout", "deployment.environment": "prod"}
PAYMENTS = {"service.name": "payments", "deployment.environment": "staging"}


def tid(n: int) -> str:
    return f"a{n:031x}"


def sid(n: int) -> str:
    return f"b{n:015x}"


T = {n: tid(n) for n in range(1, 7)}
# Span name -> (trace number, span number, parent span number or 0).
SPANS = {
    "s11": (1, 11, 0), "s12": (1, 12, 11), "s13": (1, 13, 12),
    "s21": (2, 21, 0), "s22": (2, 22, 21), "s23": (2, 23, 22), "s24": (2, 24, 22),
    "s31": (3, 31, 0),
    "s41": (4, 41, 0), "s42": (4, 42, 41), "s43": (4, 43, 42),
    "s51": (5, 51, 0),
    "s61": (6, 61, 0), "s62": (6, 62, 61), "s63": (6, 63, 62),
}
S = {name: sid(n) for name, (_, n, _) in SPANS.items()}
TRACE_OF = {S[name]: T[t] for name, (t, _, _) in SPANS.items()}
ALL = set(S)


def trace_start(t0: int, n: int) -> int:
    return t0 + 10 * n * NS


def build(t0: int) -> bytes:
    """The spans as one OTLP ExportTraceServiceRequest (protobuf)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    class FixedIds(IdGenerator):
        trace_id = 0
        span_id = 0

        def generate_trace_id(self) -> int:
            return self.trace_id

        def generate_span_id(self) -> int:
            return self.span_id

    ids = FixedIds()
    exporter = InMemorySpanExporter()
    providers = {}
    for res in (FRONTEND, CHECKOUT, PAYMENTS):
        p = TracerProvider(resource=Resource(res), id_generator=ids)
        p.add_span_processor(SimpleSpanProcessor(exporter))
        providers[res["service.name"]] = p.get_tracer(f"shop.{res['service.name']}", "1.0.0")
    spans: dict[str, Any] = {}

    def span(name: str, service: str, op: str, kind: SpanKind, start_ms: int, dur_ms: int,
             attrs: dict[str, Any], status: tuple[StatusCode, str] | None = None,
             events: list[tuple[str, dict[str, Any], int]] = (), links: list[Link] = ()) -> None:
        t, n, parent = SPANS[name]
        ids.trace_id, ids.span_id = int(T[t], 16), int(sid(n), 16)
        ctx = trace.set_span_in_context(spans[f"s{parent}"]) if parent else None
        begin = trace_start(t0, t) + start_ms * MS
        s = providers[service].start_span(op, context=ctx, kind=kind, attributes=attrs, start_time=begin,
                                          links=list(links))
        for ev_name, ev_attrs, at_ms in events:
            s.add_event(ev_name, ev_attrs, timestamp=begin + at_ms * MS)
        if status:
            s.set_status(Status(*status))
        spans[name] = s
        s.end(end_time=begin + dur_ms * MS)

    ok, err = StatusCode.OK, StatusCode.ERROR
    span("s11", "frontend", "GET /cart", SpanKind.SERVER, 0, 200,
         {"http.method": "GET", "http.status_code": 200, "http.route": "/cart"})
    span("s12", "checkout", "load cart", SpanKind.SERVER, 10, 120, {"cart.items": 3, "cache.hit": True}, (ok, ""))
    span("s13", "checkout", "SELECT cart", SpanKind.CLIENT, 20, 30, {"db.system": "postgresql", "db.rows": 2.5})
    span("s21", "frontend", "POST /checkout", SpanKind.SERVER, 0, 900,
         {"http.method": "POST", "http.status_code": 503, "http.route": "/checkout"}, (err, "upstream failed"))
    span("s22", "checkout", "charge", SpanKind.SERVER, 50, 700, {"payment.amount": 19.99, "payment.method": "card"},
         (err, "card declined"), events=[("exception", {"exception.type": "CardDeclined"}, 5)])
    span("s23", "payments", "authorize", SpanKind.SERVER, 100, 500, {"http.status_code": "503", "retry": True})
    span("s24", "checkout", "SELECT orders", SpanKind.CLIENT, 60, 20, {"db.system": "postgresql"}, (ok, ""))
    link_ctx = SpanContext(int(T[1], 16), int(S["s11"], 16), is_remote=True, trace_flags=TraceFlags(1))
    span("s31", "frontend", "GET /health", SpanKind.SERVER, 0, 2,
         {"http.method": "GET", "http.status_code": 200, "http.route": "/health"},
         links=[Link(link_ctx, {"link.reason": "follow"})])
    span("s41", "checkout", "nightly-report", SpanKind.INTERNAL, 0, 5000,
         {"job.kind": "nightly", "job.tags": ["a", "b"], "job.ids": [1, 2]})
    span("s42", "checkout", "render", SpanKind.INTERNAL, 100, 1000, {"template": "report.html", "payload": b"\x00\x01"})
    span("s43", "checkout", "write", SpanKind.PRODUCER, 1200, 200, {"bytes.written": 1024, "ratio": 0.5})
    span("s51", "payments", "refund", SpanKind.SERVER, 0, 50, {"http.method": "DELETE", "http.status_code": 404},
         events=[("audit", {"audit.user": "alice"}, 1)])
    span("s61", "frontend", "GET /cart", SpanKind.SERVER, 0, 300,
         {"http.method": "GET", "http.status_code": 500, "http.route": "/cart"})
    span("s62", "checkout", "load cart", SpanKind.SERVER, 10, 250, {"cart.items": 0, "cache.hit": False},
         (err, "timeout"))
    span("s63", "checkout", "SELECT cart", SpanKind.CLIENT, 20, 200, {"db.system": "postgresql", "db.rows": 0.0},
         (err, "timeout"))
    return encode_spans(exporter.get_finished_spans()).SerializeToString()


def load(client: Any, db: str, t0: int) -> None:
    """Decode with the daemon's decoder and insert its Native blocks."""
    from otelingest import _native

    decoded = _native.decode_traces(build(t0))
    assert decoded.rejected == 0
    for table, _, block in decoded.blocks:
        client.raw_insert(f"{db}.{table}", insert_block=block, fmt="Native")
