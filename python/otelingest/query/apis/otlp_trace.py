"""Stored spans as OTLP ``ResourceSpans`` (Tempo's trace by id): protobuf and proto3 JSON.

Tempo's ``tempopb.Trace`` is ``repeated ResourceSpans`` in field 1, the same wire format as OTLP
``TracesData``, so the protobuf answer is a serialized ``TracesData``; ``/api/v2/traces`` wraps it
as field 1 (``trace``) of ``TraceByIDResponse``. The JSON answers use the proto3 JSON mapping as
Tempo's (ids in base64, int64 as strings, enums by name).

Attribute values regain their OTLP type from the kind letters stored beside the maps (migration
0008); spans stored before them, and event/link attributes, have their kind inferred from the text
(README "Attribute values").
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]  # no stubs installed
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Status, TracesData

from ..spans import Span

_INT = re.compile(r"-?[0-9]+")
_DOUBLE = re.compile(r"-?([0-9]+[.][0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?|-?[0-9]+[eE][-+]?[0-9]+|NaN|-?Infinity")
_KIND = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def infer_kind(text: str) -> str:
    """The kind letter of a value stored without one (same rule as the SQL fragment infer_kind)."""
    if _INT.fullmatch(text):
        return "i"
    if text in ("true", "false"):
        return "b"
    if _DOUBLE.fullmatch(text):
        return "d"
    return "s"


def kinds_of(values: dict[str, str], letters: str) -> list[str]:
    """Kind letter per entry of ``values`` (in map order)."""
    if len(letters) == len(values):
        return list(letters)
    return [infer_kind(v) for v in values.values()]


def _json_any(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_json_any(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=_json_any(v)) for k, v in value.items()]))
    return AnyValue(string_value=str(value))


def any_value(text: str, kind: str) -> AnyValue:
    """The OTLP value of stored ``text`` of kind ``kind``."""
    try:
        if kind == "i":
            return AnyValue(int_value=int(text))
        if kind == "d":
            return AnyValue(double_value=float(text))
        if kind == "b":
            return AnyValue(bool_value=text == "true")
        if kind == "y":
            return AnyValue(bytes_value=base64.b64decode(text))
        if kind in ("a", "k"):
            return _json_any(json.loads(text))
        if kind == "e":
            return AnyValue()
    except (ValueError, TypeError):
        pass
    return AnyValue(string_value=text)


def json_value(text: str, kind: str) -> dict[str, Any]:
    """Proto3 JSON of a value (Tempo's search answers)."""
    return json_format.MessageToDict(any_value(text, kind))


def _attrs(values: dict[str, str], letters: str) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v, kind)) for (k, v), kind in zip(values.items(), kinds_of(values, letters))]


def traces_data(spans: list[Span]) -> TracesData:
    """The spans of one trace grouped by resource then scope, in start order."""
    out = TracesData()
    resources: dict[Any, ResourceSpans] = {}
    scopes: dict[Any, Any] = {}
    for s in sorted(spans, key=lambda x: (x.start_ns, x.span_id)):
        rkey = (s.service, tuple(s.resource.items()), s.resource_kinds)
        rs = resources.get(rkey)
        if rs is None:
            rs = resources[rkey] = out.resource_spans.add()
            rs.resource.attributes.extend(_attrs(s.resource, s.resource_kinds))
            if "service.name" not in s.resource:
                rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=s.service)))
        skey = (rkey, s.scope_name, s.scope_version, tuple(s.scope_attributes.items()))
        ss = scopes.get(skey)
        if ss is None:
            ss = scopes[skey] = rs.scope_spans.add()
            ss.scope.name = s.scope_name
            ss.scope.version = s.scope_version
            ss.scope.attributes.extend(_attrs(s.scope_attributes, ""))
        p = ss.spans.add()
        p.trace_id = bytes.fromhex(s.trace_id)
        p.span_id = bytes.fromhex(s.span_id)
        if s.parent:
            p.parent_span_id = bytes.fromhex(s.parent_span_id)
        p.trace_state = s.trace_state
        p.flags = s.flags
        p.name = s.name
        p.kind = _KIND.get(s.kind, 0)  # type: ignore[assignment]
        p.start_time_unix_nano = s.start_ns
        p.end_time_unix_nano = s.start_ns + s.duration_ns
        p.attributes.extend(_attrs(s.attributes, s.span_kinds))
        p.status.CopyFrom(Status(code=_STATUS.get(s.status_code, 0), message=s.status_message))  # type: ignore[arg-type]
        for t, n, a in zip(s.event_times, s.event_names, s.event_attributes):
            e = p.events.add()
            e.time_unix_nano, e.name = t, n
            e.attributes.extend(_attrs(a, ""))
        for lt, ls, st, la in zip(s.link_trace_ids, s.link_span_ids, s.link_trace_states, s.link_attributes):
            link = p.links.add()
            link.trace_id, link.span_id, link.trace_state = bytes.fromhex(lt), bytes.fromhex(ls), st
            link.attributes.extend(_attrs(la, ""))
    return out


def resource_spans_json(data: TracesData) -> list[dict[str, Any]]:
    return json_format.MessageToDict(data).get("resourceSpans", [])


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def trace_by_id_response(data: TracesData) -> bytes:
    """``tempopb.TraceByIDResponse`` with ``trace`` (field 1) set."""
    body = data.SerializeToString()
    return b"\x0a" + _varint(len(body)) + body

