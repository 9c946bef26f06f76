"""OTLP/JSON as real senders write it decodes to the same blocks as the protobuf request."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from otelingest import _native
from otlp_reference import insert, read_back
from test_native_logs import request as logs_request
from test_native_metrics import request as metrics_request
from test_native_traces import T0
from test_native_traces import full_request as traces_request

INT64_KEYS = {"timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "observedTimeUnixNano", "intValue", "asInt",
              "count", "zeroCount", "bucketCounts"}
ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def otlp_json(msg: Any, *, enums_as_numbers: bool = False, snake_case: bool = False, ints_as_numbers: bool = False) -> bytes:
    """The request as OTLP/JSON: proto3 JSON, but ids as hex (what the spec and senders use)."""
    d = MessageToDict(msg, use_integers_for_enums=enums_as_numbers, preserving_proto_field_name=snake_case)

    def fix(x: Any, key: str = "") -> Any:
        if isinstance(x, dict):
            return {k: fix(v, k) for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v, key) for v in x]
        if key in ID_KEYS and isinstance(x, str):
            return base64.b64decode(x).hex()
        if ints_as_numbers and isinstance(x, str) and key in INT64_KEYS:
            return int(x)
        return x

    return json.dumps(fix(d)).encode()


SIGNALS = [
    ("traces", _native.decode_traces, traces_request),
    ("logs", _native.decode_logs, logs_request),
    ("metrics", _native.decode_metrics, metrics_request),
]


@pytest.mark.parametrize("name,decode,make", SIGNALS, ids=[s[0] for s in SIGNALS])
@pytest.mark.parametrize("variant", [{}, {"enums_as_numbers": True}, {"snake_case": True}, {"ints_as_numbers": True}],
                         ids=["camel-names", "enum-numbers", "snake_case", "int-numbers"])
def test_json_gives_the_same_blocks_as_protobuf(name, decode, make, variant):
    req = make()
    want = decode(req.SerializeToString())
    got = decode(otlp_json(req, **variant), format="json")
    assert (got.items, got.rejected) == (want.items, want.rejected)
    assert got.blocks == want.blocks


# The shape the OpenTelemetry JS OTLP/HTTP JSON exporter sends (ids hex, times as strings).
JS_EXPORTER_BODY = {
    "resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "web-frontend"}},
            {"key": "telemetry.sdk.language", "value": {"stringValue": "webjs"}},
            {"key": "process.pid", "value": {"intValue": 4242}},
        ], "droppedAttributesCount": 0},
        "scopeSpans": [{
            "scope": {"name": "@opentelemetry/instrumentation-fetch", "version": "0.52.0"},
            "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "parentSpanId": "",
                "name": "HTTP GET",
                "kind": 3,
                "startTimeUnixNano": str(T0),
                "endTimeUnixNano": str(T0 + 2_500_000),
                "attributes": [
                    {"key": "http.method", "value": {"stringValue": "GET"}},
                    {"key": "http.status_code", "value": {"intValue": "200"}},
                    {"key": "http.response_content_length", "value": {"doubleValue": 1024}},
                    {"key": "cached", "value": {"boolValue": False}},
                ],
                "droppedAttributesCount": 0,
                "events": [{"timeUnixNano": T0 + 1000, "name": "fetchStart", "attributes": [], "droppedAttributesCount": 0}],
                "droppedEventsCount": 0,
                "status": {"code": 0},
                "links": [],
                "droppedLinksCount": 0,
            }],
        }],
    }],
}


def test_js_exporter_shape_lands_in_clickhouse(migrated, ch_client):
    d = _native.decode_traces(json.dumps(JS_EXPORTER_BODY).encode(), format="json")
    assert (d.items, d.rejected) == (1, 0)
    db = migrated.clickhouse.database
    insert(ch_client, db, d)
    cols = ["TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName", "Duration", "SpanAttributes",
            "ScopeName", "Events.Name", "Events.Timestamp", "Timestamp"]
    [row] = read_back(ch_client, db, "otel_traces", cols, "SpanName")
    assert row == {
        "TraceId": "5B8EFFF798038103D269B633813FC60C", "SpanId": "EEE19B7EC3C1B174", "ParentSpanId": "0000000000000000",
        "SpanName": "HTTP GET", "SpanKind": "CLIENT", "ServiceName": "web-frontend", "Duration": 2_500_000,
        "SpanAttributes": {"http.method": "GET", "http.status_code": "200", "http.response_content_length": "1024.0",
                           "cached": "false"},
        "ScopeName": "@opentelemetry/instrumentation-fetch", "Events.Name": ["fetchStart"], "Events.Timestamp": [T0 + 1000],
        "Timestamp": T0,
    }


def test_collector_shape_logs_with_enum_names():
    body = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {}, "logRecords": [{
        "timeUnixNano": str(T0), "observedTimeUnixNano": str(T0), "severityNumber": "SEVERITY_NUMBER_WARN",
        "severityText": "Warning", "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "hi"}}]}},
        "traceId": "0102030405060708090A0B0C0D0E0F10", "spanId": "0102030405060708", "flags": 1,
    }]}]}]}
    d = _native.decode_logs(json.dumps(body).encode(), format="json")
    assert (d.items, d.rejected) == (1, 0)


def test_json_wrong_length_hex_id_is_rejected_not_fatal():
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "abcd", "spanId": "0102030405060708", "name": "short"},
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "ok"},
    ]}]}]}
    d = _native.decode_traces(json.dumps(body).encode(), format="json")
    assert (d.items, d.rejected) == (1, 1)
    assert d.rejection_reason == "span rejected: trace_id has 2 bytes, expected 16 (or empty)"


@pytest.mark.parametrize("body,reason", [
    (b"{", "invalid JSON"),
    (b"[]", "ExportTraceServiceRequest: expected a JSON object"),
    (b'{"resourceSpans": {}}', "ExportTraceServiceRequest.resourceSpans: expected a JSON array"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 1}]}]}]}', "Span.name: expected a string"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "Span.traceId: invalid hex id"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_BOGUS"}]}]}]}', "Span.kind: unknown enum value"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": true}]}]}]}', "Span.startTimeUnixNano: expected an integer"),
])
def test_json_of_the_wrong_shape_is_a_decode_error(body, reason):
    with pytest.raises(_native.DecodeError) as e:
        _native.decode_traces(body, format="json")
    assert str(e.value).startswith(reason)
