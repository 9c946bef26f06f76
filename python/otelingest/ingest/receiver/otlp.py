"""OTLP wire details the receivers need, encoded by hand (no Python protobuf in the hot path).

Export*ServiceResponse { ExportPartialSuccess partial_success = 1 }, where the partial success is
{ int64 rejected_<items> = 1; string error_message = 2 }; google.rpc.Status and RetryInfo for
errors. Field numbers are the same for the three signals; only the JSON names differ.
"""

from __future__ import annotations

import json

SIGNALS = ("traces", "logs", "metrics")
JSON_REJECTED = {"traces": "rejectedSpans", "logs": "rejectedLogRecords", "metrics": "rejectedDataPoints"}
GRPC_METHODS = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "traces",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "logs",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "metrics",
}
HTTP_PATHS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, data: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def _field_varint(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def response_protobuf(rejected: int = 0, message: str | None = None) -> bytes:
    if not rejected and not message:
        return b""
    inner = b""
    if rejected:
        inner += _field_varint(1, rejected)
    if message:
        inner += _field_bytes(2, message.encode())
    return _field_bytes(1, inner)


def response_json(signal: str, rejected: int = 0, message: str | None = None) -> bytes:
    if not rejected and not message:
        return b"{}"
    partial: dict[str, str] = {}
    if rejected:
        partial[JSON_REJECTED[signal]] = str(rejected)  # int64 is a string in proto3 JSON
    if message:
        partial["errorMessage"] = message
    return json.dumps({"partialSuccess": partial}).encode()


def retry_info(seconds: int) -> bytes:
    """google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1 { int64 seconds = 1 } }."""
    return _field_bytes(1, _field_varint(1, seconds))


def rpc_status(code: int, message: str, details: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3 }."""
    out = _field_varint(1, code) + _field_bytes(2, message.encode())
    for type_url, value in details:
        out += _field_bytes(3, _field_bytes(1, type_url.encode()) + _field_bytes(2, value))
    return out


def status_json(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()
