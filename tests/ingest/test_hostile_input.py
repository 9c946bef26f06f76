"""Hostile input against a running daemon: a clear error, no crash, nothing else affected.

The decoder's own answers to hostile bodies are tests/ingest/test_native_hostile.py and the basic status
codes (garbage, 413, 415, 404, slow body) tests/ingest/test_receiver_http.py. Here every hostile request
goes through the receivers of a real daemon, and after each one a valid request on another
connection must still get 200 and be stored; at the end no worker has been restarted.
"""

from __future__ import annotations

import gzip
import http.client
import itertools
import json
import socket
from typing import Any, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from daemon import Daemon
from load import T0

MAX_REQUEST = 32 << 20
MAX_DECOMPRESSED = 48 << 20
REQUEST_TIMEOUT_S = 2
# A hostile request must be answered, or its connection closed, well within this (no hang).
ANSWER_WITHIN_S = 30
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_probe = itertools.count(1)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {
        "OTELINGEST_RECEIVER_MAX_REQUEST_BYTES": str(MAX_REQUEST),
        "OTELINGEST_RECEIVER_MAX_DECOMPRESSED_BYTES": str(MAX_DECOMPRESSED),
        "OTELINGEST_RECEIVER_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    }
    with Daemon(tmp_path_factory.mktemp("hostile"), env=env) as d:
        yield d
        assert d.metric("otel_worker_restarts_total") == 0, d.log_tail()


def post(d: Daemon, path: str, body: Any, headers: dict[str, str], *, method: str = "POST") -> tuple[int, bytes]:
    if len(body) > MAX_REQUEST:
        return post_oversized(d, path, body, headers)
    conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=ANSWER_WITHIN_S)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def post_oversized(d: Daemon, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """The daemon answers 413 on the headers and closes: read that answer as a careful client does."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", d.http_port), timeout=ANSWER_WITHIN_S) as s:
        s.sendall(head.encode())
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest


def valid_request(service: str, spans: int = 3) -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    out = rs.scope_spans.add().spans
    for k in range(spans):
        out.add(trace_id=(k + 1).to_bytes(16, "big"), span_id=(k + 1).to_bytes(8, "big"), name="ok",
                start_time_unix_nano=T0 + k, end_time_unix_nano=T0 + k + 10)
    return req.SerializeToString()


def still_serving(d: Daemon) -> None:
    """A valid request on a fresh connection is acknowledged and its spans are stored."""
    service = f"probe-{next(_probe)}"
    status, body = post(d, "/v1/traces", valid_request(service), {"Content-Type": "application/x-protobuf"})
    assert status == 200, body
    assert d.wait_count_where("otel_traces", "ServiceName = {s:String}", {"s": service}, 3) == 3


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def nested_anyvalue_request(depth: int) -> bytes:
    v = b"\x18\x01"  # AnyValue { int_value: 1 }
    for _ in range(depth):
        v = _field(5, _field(1, v))  # AnyValue { array_value: ArrayValue { values: [v] } }
    kv = _field(1, b"k") + _field(2, v)
    return _field(1, _field(2, _field(2, _field(9, kv))))  # request > resource_spans > scope_spans > span


def wide_span_request(attributes: int) -> bytes:
    """One span with ``attributes`` KeyValues {key "a", int_value 1}, built by hand (fast)."""
    kv = _field(9, _field(1, b"a") + _field(2, b"\x18\x01"))
    span = kv * attributes
    return _field(1, _field(2, _field(2, span)))


def invalid_utf8_request() -> bytes:
    return _field(1, _field(2, _field(2, _field(5, b"\xff\xfe"))))  # Span.name = b"\xff\xfe"


PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}

HOSTILE: list[tuple[str, bytes, dict[str, str], int]] = [
    ("truncated-protobuf", valid_request("cut", 5)[:-7], PROTOBUF, 400),
    ("malformed-protobuf", b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 10, PROTOBUF, 400),
    ("invalid-utf8", invalid_utf8_request(), PROTOBUF, 400),
    ("anyvalue-nesting-10000", nested_anyvalue_request(10_000), PROTOBUF, 400),
    ("json-nesting-10000", ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":'
                            + '{"arrayValue":{"values":[' * 10_000 + "]}}" * 10_000 + "}]}]}]}]}").encode(), JSON, 400),
    ("json-wrong-type-list", b'{"resourceSpans": "not a list"}', JSON, 400),
    ("json-wrong-type-name", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00" * 16, "spanId": "00" * 8, "name": 42}]}]}]}).encode(), JSON, 400),
    ("json-not-an-object", b"[1, 2, 3]", JSON, 400),
    ("json-invalid-utf8", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\xff\xfe"}]}]}]}', JSON, 400),
    ("gzip-bomb", gzip.compress(b"\x00" * (MAX_DECOMPRESSED * 2)),
     {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 400),
    ("corrupt-gzip", b"\x1f\x8b\x08\x00garbage", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 400),
    ("two-million-attributes", wide_span_request(2_000_000), PROTOBUF, 400),
    ("over-the-limit", b"\x00" * (MAX_REQUEST + 1), PROTOBUF, 413),
    ("wrong-content-type", b"{}", {"Content-Type": "text/html"}, 415),
    ("no-content-type", b"{}", {}, 415),
]


@pytest.mark.parametrize("body,headers,expected", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_http_body_is_refused_and_others_are_served(daemon: Daemon, body: bytes, headers: dict[str, str],
                                                           expected: int) -> None:
    status, reply = post(daemon, "/v1/traces", body, headers)
    assert status == expected, reply[:300]
    still_serving(daemon)


@pytest.mark.parametrize("path,method,expected", [
    ("/v1/unknown", "POST", 404), ("/../../etc/passwd", "POST", 404), ("/v1/traces?x=" + "a" * 2000, "POST", 200),
    ("/v1/traces", "GET", 405), ("/v1/traces", "DELETE", 405),
])
def test_unknown_paths_and_methods(daemon: Daemon, path: str, method: str, expected: int) -> None:
    body = valid_request("query-string") if expected == 200 else b"{}"
    status, _ = post(daemon, path, body, PROTOBUF, method=method)
    assert status == expected
    still_serving(daemon)


@pytest.mark.parametrize("body,headers", [(b"", PROTOBUF), (b"{}", JSON)], ids=["protobuf", "json"])
def test_empty_request_is_an_empty_success(daemon: Daemon, body: bytes, headers: dict[str, str]) -> None:
    status, _ = post(daemon, "/v1/traces", body, headers)
    assert status == 200
    still_serving(daemon)


def test_slowloris_connections_do_not_block_others(daemon: Daemon) -> None:
    """Many connections dribbling headers and bodies: each is cut off, and others are served meanwhile."""
    slow = []
    for k in range(20):
        s = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=ANSWER_WITHIN_S)
        if k % 2:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")  # headers never end
        else:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        slow.append(s)
    try:
        still_serving(daemon)
        for s in slow[:5]:
            s.sendall(b" ")  # a byte now and then does not extend the whole-request deadline
        for s in slow:
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            # Cut off: a 408 answer, or the connection closed without a word for unfinished headers.
            assert reply == b"" or reply.startswith(b"HTTP/1.1 408 "), reply[:100]
    finally:
        for s in slow:
            s.close()
    still_serving(daemon)


def test_grpc_hostile_messages_are_invalid_argument(daemon: Daemon) -> None:
    with grpc.insecure_channel(daemon.grpc_endpoint,
                               options=[("grpc.max_send_message_length", MAX_REQUEST * 2)]) as channel:
        export = channel.unary_unary(TRACES)
        for body in (nested_anyvalue_request(10_000), invalid_utf8_request(), valid_request("cut", 5)[:-7],
                     wide_span_request(2_000_000)):
            with pytest.raises(grpc.RpcError) as err:
                export(body, timeout=ANSWER_WITHIN_S)
            assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), err.value
            still_serving(daemon)
        # A gzip bomb in gRPC message compression: bounded by the receive limit, not memory.
        with pytest.raises(grpc.RpcError) as err:
            export(b"\x00" * (MAX_DECOMPRESSED * 2), timeout=ANSWER_WITHIN_S, compression=grpc.Compression.Gzip)
        assert err.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT), err.value
        still_serving(daemon)
        # Over the size limit.
        with pytest.raises(grpc.RpcError) as err:
            export(b"\x00" * (MAX_REQUEST + 1), timeout=ANSWER_WITHIN_S)
        assert err.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
    still_serving(daemon)


# --- property: any body, any content type, any encoding: an answer from the allowed set ---------------

VALID = valid_request("fuzz-seed", 4)


def _mutate(data: Any) -> bytes:
    body = bytearray(VALID)
    for pos, byte in data:
        if body:
            body[pos % len(body)] = byte
    return bytes(body)


bodies = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8).map(_mutate),
    st.integers(0, len(VALID)).map(lambda n: VALID[:n]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                     ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "attributes", "key",
                      "value", "stringValue", "arrayValue", "values", "kvlistValue", "startTimeUnixNano"]), c, max_size=4),
                 max_leaves=30).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=bodies, ctype=st.sampled_from(["application/x-protobuf", "application/json"]),
       gzipped=st.booleans(), path=st.sampled_from(["/v1/traces", "/v1/logs", "/v1/metrics"]))
def test_fuzzed_bodies_get_a_clean_answer(daemon: Daemon, body: bytes, ctype: str, gzipped: bool, path: str) -> None:
    headers = {"Content-Type": ctype}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    status, reply = post(daemon, path, body, headers)
    assert status in (200, 400), (status, reply[:200])


def test_still_serving_after_the_fuzzing(daemon: Daemon) -> None:
    still_serving(daemon)
