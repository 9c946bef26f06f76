"""OTLP/HTTP and OTLP/gRPC receivers of a running daemon: status codes, JSON as the OTel JS
exporter sends it (hex ids, chunked transfer encoding), limits, partial responses."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
import zlib
from typing import Any, Iterator

import grpc
import pytest

from daemon import Daemon

MAX_REQUEST = 64 * 1024
# Recent timestamps: rows older than the retention (30 days) are dropped by the table's TTL.
T0 = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {"OTELINGEST_RECEIVER_MAX_REQUEST_BYTES": str(MAX_REQUEST), "OTELINGEST_RECEIVER_REQUEST_TIMEOUT_S": "2"}
    with Daemon(tmp_path_factory.mktemp("rx"), env=env) as d:
        yield d


def post(d: Daemon, path: str, body: Any, headers: dict[str, str], *, chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def js_traces(service: str, n: int, start_ns: int) -> dict[str, Any]:
    """ExportTraceServiceRequest as OTLP/JSON, the way @opentelemetry/otlp-transformer writes it."""
    spans = []
    for k in range(n):
        spans.append({
            "traceId": f"{k + 1:032x}", "spanId": f"{k + 1:016x}", "name": f"GET /js/{k}", "kind": 2,
            "startTimeUnixNano": str(start_ns + k), "endTimeUnixNano": str(start_ns + k + 1500),
            "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}},
                           {"key": "http.status_code", "value": {"intValue": 200}}],
            "droppedAttributesCount": 0, "events": [], "droppedEventsCount": 0,
            "status": {"code": 0}, "links": [], "droppedLinksCount": 0,
        })
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}], "droppedAttributesCount": 0},
        "scopeSpans": [{"scope": {"name": "@opentelemetry/instrumentation-http", "version": "0.57.0"}, "spans": spans}],
    }]}


def test_json_chunked_as_the_js_exporter_sends_it(daemon: Daemon) -> None:
    body = json.dumps(js_traces("js-chunked", 25, T0)).encode()
    pieces = iter([body[i:i + 700] for i in range(0, len(body), 700)])
    status, headers, resp = post(daemon, "/v1/traces", pieces, {"Content-Type": "application/json"}, chunked=True)
    assert (status, headers["content-type"], json.loads(resp)) == (200, "application/json", {})
    assert daemon.wait_count_where("otel_traces", "ServiceName = 'js-chunked'", {}, 25) == 25
    rows = daemon.client().query(
        "SELECT lower(hex(TraceId)), lower(hex(SpanId)), SpanName, toUnixTimestamp64Nano(Timestamp), Duration,"
        " SpanAttributes FROM otel.otel_traces WHERE ServiceName = 'js-chunked' ORDER BY SpanId").result_rows
    assert rows == [(f"{k + 1:032x}", f"{k + 1:016x}", f"GET /js/{k}", T0 + k, 1500,
                     {"http.method": "GET", "http.status_code": "200"}) for k in range(25)]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_json(daemon: Daemon, encoding: str) -> None:
    raw = json.dumps(js_traces(f"js-{encoding}", 5, T0)).encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    status, _, resp = post(daemon, "/v1/traces", body, {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert status == 200, resp
    assert daemon.wait_count_where("otel_traces", "ServiceName = {s:String}", {"s": f"js-{encoding}"}, 5) == 5


def test_garbage_is_400_in_the_request_format(daemon: Daemon) -> None:
    status, headers, body = post(daemon, "/v1/traces", b"\xff\xff\xff not protobuf", {"Content-Type": "application/x-protobuf"})
    assert status == 400 and headers["content-type"] == "application/x-protobuf"
    from google.rpc import status_pb2

    st = status_pb2.Status.FromString(body)
    assert st.code == 3 and st.message
    status, headers, body = post(daemon, "/v1/logs", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"]


def test_over_the_size_limit_is_413(daemon: Daemon) -> None:
    status, _, _ = post(daemon, "/v1/traces", b"\0" * (MAX_REQUEST + 1), {"Content-Type": "application/x-protobuf"})
    assert status == 413
    big = iter([b"\0" * 16384] * 5)
    status, _, _ = post(daemon, "/v1/traces", big, {"Content-Type": "application/x-protobuf"}, chunked=True)
    assert status == 413


def test_unsupported_content_type_is_415(daemon: Daemon) -> None:
    assert post(daemon, "/v1/traces", b"x", {"Content-Type": "text/plain"})[0] == 415
    assert post(daemon, "/v1/traces", b"x", {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"})[0] == 415


def test_unknown_path_is_404(daemon: Daemon) -> None:
    assert post(daemon, "/v1/spans", b"{}", {"Content-Type": "application/json"})[0] == 404


def test_a_slow_client_gets_408_instead_of_holding_the_worker(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_keep_alive_serves_many_requests_on_one_connection(daemon: Daemon) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30)
    try:
        for k in range(5):
            body = json.dumps(js_traces("js-keepalive", 2, T0 + 10 * k)).encode()
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, b"{}")
    finally:
        conn.close()
    assert daemon.wait_count_where("otel_traces", "ServiceName = 'js-keepalive'", {}, 10) == 10


def test_grpc_garbage_is_invalid_argument(daemon: Daemon) -> None:
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(b"\xff\xff\xff garbage", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        unknown = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Nope")
        with pytest.raises(grpc.RpcError) as err:
            unknown(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_empty_request_is_an_empty_success(daemon: Daemon) -> None:
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        assert export(b"", timeout=10) == b""


def test_items_with_bad_ids_are_rejected_alone_with_partial_success(daemon: Daemon) -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "partial"
    spans = rs.scope_spans.add().spans
    for k in range(5):
        spans.add(trace_id=(b"\x07" * 16 if k != 2 else b"\x07" * 3), span_id=(k + 1).to_bytes(8, "big"),
                  name="p", start_time_unix_nano=T0, end_time_unix_nano=T0 + 1)
    body = req.SerializeToString()
    status, headers, resp = post(daemon, "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    assert status == 200 and headers["content-type"] == "application/x-protobuf"
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(resp).partial_success
    assert partial.rejected_spans == 1 and partial.error_message
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        partial = trace_service_pb2.ExportTraceServiceResponse.FromString(export(body, timeout=10)).partial_success
    assert partial.rejected_spans == 1
    status, _, resp = post(daemon, "/v1/traces", json.dumps({"resourceSpans": []}).encode(), {"Content-Type": "application/json"})
    assert (status, json.loads(resp)) == (200, {})
    assert daemon.wait_count_where("otel_traces", "ServiceName = 'partial'", {}, 8) == 8
