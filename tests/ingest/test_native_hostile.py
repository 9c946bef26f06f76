"""Hostile and broken bodies give DecodeError with a short reason: never a crash, never a partial write."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otelingest import _native
from test_native_logs import request as logs_request
from test_native_metrics import request as metrics_request
from test_native_traces import full_request as traces_request

DECODERS = [
    (_native.decode_traces, traces_request),
    (_native.decode_logs, logs_request),
    (_native.decode_metrics, metrics_request),
]
IDS = ["traces", "logs", "metrics"]


def spans_request(*spans: Span) -> bytes:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]).SerializeToString()


@pytest.mark.parametrize("decode,make", DECODERS, ids=IDS)
def test_every_truncation_is_an_error_or_a_clean_prefix(decode, make):
    body = make().SerializeToString()
    for n in range(len(body)):
        try:
            d = decode(body[:n])
        except _native.DecodeError as e:
            assert str(e)
        else:
            # A cut at a field boundary is a valid, shorter message: fewer whole items, never more.
            assert d.items <= decode(body).items


@pytest.mark.parametrize("compression,compress", [("gzip", gzip.compress), ("deflate", zlib.compress),
                                                  ("deflate", lambda b: zlib.compress(b, wbits=-15))],
                         ids=["gzip", "deflate-zlib", "deflate-raw"])
@pytest.mark.parametrize("decode,make", DECODERS, ids=IDS)
def test_compressed_bodies_decode_like_plain_ones(decode, make, compression, compress):
    body = make().SerializeToString()
    assert decode(compress(body), compression=compression).blocks == decode(body).blocks


def test_compression_names_are_case_insensitive():
    body = traces_request().SerializeToString()
    assert _native.decode_traces(gzip.compress(body), compression="GZIP").blocks == _native.decode_traces(body).blocks
    assert _native.decode_traces(body, compression="identity").blocks == _native.decode_traces(body).blocks


def test_gzip_bomb_is_refused_at_the_cap():
    bomb = gzip.compress(b"\x00" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1 << 20
    with pytest.raises(_native.DecodeError, match="decompressed body exceeds 1048576 bytes"):
        _native.decode_traces(bomb, compression="gzip", max_decompressed_bytes=1 << 20)


def test_corrupt_gzip_is_a_decode_error():
    with pytest.raises(_native.DecodeError, match="invalid gzip body"):
        _native.decode_traces(b"\x1f\x8b\x08\x00garbage", compression="gzip")


def test_oversize_plain_body_is_refused():
    with pytest.raises(_native.DecodeError, match="body exceeds 100 bytes"):
        _native.decode_traces(spans_request(Span(name="x" * 200)), max_decompressed_bytes=100)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def test_anyvalue_nesting_bomb_is_a_decode_error():
    # Built by hand: the protobuf package itself refuses to nest this deep.
    v = AnyValue(int_value=1).SerializeToString()
    for _ in range(10_000):
        v = _field(5, _field(1, v))  # AnyValue { array_value: ArrayValue { values: [v] } }
    kv = _field(1, b"k") + _field(2, v)
    body = _field(1, _field(2, _field(2, _field(9, kv))))  # request > resource_spans > scope_spans > span
    with pytest.raises(_native.DecodeError, match="AnyValue nested deeper than 64 levels"):
        _native.decode_traces(body)


def test_json_nesting_bomb_is_a_decode_error():
    inner = '{"arrayValue":{"values":[' * 10_000 + "]}}" * 10_000
    body = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":' + inner + "}]}]}]}]}"
    with pytest.raises(_native.DecodeError, match="recursion limit exceeded"):
        _native.decode_traces(body.encode(), format="json")


def test_too_many_attributes_is_a_decode_error():
    attrs = [KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(11)]
    body = spans_request(Span(name="wide", attributes=attrs))
    assert _native.decode_traces(body, max_attributes=11).items == 1
    with pytest.raises(_native.DecodeError, match="span has more than 10 attributes"):
        _native.decode_traces(body, max_attributes=10)


def test_invalid_utf8_is_a_decode_error():
    # Span { name (field 5) = b"\xff\xfe" }, wrapped by hand: the protobuf package refuses to build it.
    span = b"\x2a\x02\xff\xfe"
    scope_spans = b"\x12" + bytes([len(span)]) + span
    resource_spans = b"\x12" + bytes([len(scope_spans)]) + scope_spans
    body = b"\x0a" + bytes([len(resource_spans)]) + resource_spans
    with pytest.raises(_native.DecodeError, match="Span.name: invalid UTF-8"):
        _native.decode_traces(body)


@pytest.mark.parametrize("body,reason", [
    (b"\x0a\x05ab", "truncated length-delimited field"),
    (b"\x0b", "unsupported wire type 3"),
    (b"\x0a" + b"\xff" * 11, "varint overflows 64 bits"),
    (b"\x08\x01", "ExportTraceServiceRequest.resource_spans: expected a length-delimited field"),
])
def test_malformed_protobuf_is_a_decode_error(body, reason):
    with pytest.raises(_native.DecodeError) as e:
        _native.decode_traces(body)
    assert str(e.value).startswith(reason)


def test_decode_error_is_a_value_error_and_arguments_are_checked():
    assert issubclass(_native.DecodeError, ValueError)
    with pytest.raises(ValueError, match="unknown format"):
        _native.decode_traces(b"", format="xml")
    with pytest.raises(ValueError, match="unknown compression"):
        _native.decode_traces(b"", compression="br")


def test_random_json_garbage_never_crashes():
    for body in [b"", b"null", b"1", b'"x"', b"{}", json.dumps({"resourceSpans": [None, 1]}).encode(), b"\xff\xfe"]:
        try:
            d = _native.decode_traces(body, format="json")
        except _native.DecodeError:
            continue
        assert d.items == 0
