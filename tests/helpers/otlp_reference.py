"""A slow, obvious Python decoding of OTLP requests into the rows the native decoder must produce.

Values are in the shape the read-back queries of the tests return them (ids as upper-case hex,
timestamps as integer nanoseconds, enums by name), so a test compares whole rows field by field.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Iterator

ZERO_TRACE = "00" * 16
ZERO_SPAN = "00" * 8
SPAN_KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
STATUS_CODES = ["UNSET", "OK", "ERROR"]
METRIC_TYPES = {"gauge": "Gauge", "sum": "Sum", "histogram": "Histogram",
                "exponential_histogram": "ExponentialHistogram", "summary": "Summary"}
TEMPORALITIES = ["Unspecified", "Delta", "Cumulative"]


def fmt_double(d: float) -> str:
    """Shortest round-trip text, ryu style (``1e300``, ``1e-7``, ``2.0``)."""
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    r = repr(d)
    if "e" in r:
        mant, exp = r.split("e")
        return f"{mant}e{int(exp)}"
    return r


def _json(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind is None or kind == "string_value_strindex":
        return "null"
    if kind == "string_value":
        return json.dumps(v.string_value, ensure_ascii=False)
    if kind == "double_value":
        d = v.double_value
        text = fmt_double(d)
        return text if math.isfinite(d) else f'"{text}"'
    if kind == "bytes_value":
        return '"' + base64.b64encode(v.bytes_value).decode() + '"'
    return render(v)


def render(v: Any) -> str:
    """The documented text of an AnyValue (README "Attribute values")."""
    kind = v.WhichOneof("value")
    if kind is None or kind == "string_value_strindex":
        return ""
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return fmt_double(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return "[" + ",".join(_json(x) for x in v.array_value.values) + "]"
    assert kind == "kvlist_value"
    return "{" + ",".join(json.dumps(kv.key, ensure_ascii=False) + ":" + _json(kv.value) for kv in v.kvlist_value.values) + "}"


def attrs(kvs: Any) -> dict[str, str]:
    return {kv.key: render(kv.value) for kv in kvs}


def hexid(b: bytes, n: int) -> str:
    return b.hex().upper() if b else "00" * n


def _envelope(resource: Any, resource_schema: str, scope: Any, scope_schema: str) -> dict[str, Any]:
    res = attrs(resource.attributes)
    return {
        "ServiceName": res.get("service.name", "unknown_service"),
        "ResourceAttributes": res,
        "ResourceSchemaUrl": resource_schema,
        "ScopeName": scope.name,
        "ScopeVersion": scope.version,
        "ScopeAttributes": attrs(scope.attributes),
        "ScopeSchemaUrl": scope_schema,
    }


def trace_rows(req: Any) -> Iterator[dict[str, Any]]:
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            env = _envelope(rs.resource, rs.schema_url, ss.scope, ss.schema_url)
            for s in ss.spans:
                yield {
                    "Timestamp": s.start_time_unix_nano,
                    "TraceId": hexid(s.trace_id, 16),
                    "SpanId": hexid(s.span_id, 8),
                    "ParentSpanId": hexid(s.parent_span_id, 8),
                    "TraceState": s.trace_state,
                    "Flags": s.flags,
                    "SpanName": s.name,
                    "SpanKind": SPAN_KINDS[s.kind],
                    **env,
                    "SpanAttributes": attrs(s.attributes),
                    "Duration": max(0, s.end_time_unix_nano - s.start_time_unix_nano),
                    "StatusCode": STATUS_CODES[s.status.code],
                    "StatusMessage": s.status.message,
                    "DroppedAttributesCount": s.dropped_attributes_count,
                    "DroppedEventsCount": s.dropped_events_count,
                    "DroppedLinksCount": s.dropped_links_count,
                    "Events.Timestamp": [e.time_unix_nano for e in s.events],
                    "Events.Name": [e.name for e in s.events],
                    "Events.Attributes": [attrs(e.attributes) for e in s.events],
                    "Events.DroppedAttributesCount": [e.dropped_attributes_count for e in s.events],
                    "Links.TraceId": [hexid(l.trace_id, 16) for l in s.links],
                    "Links.SpanId": [hexid(l.span_id, 8) for l in s.links],
                    "Links.TraceState": [l.trace_state for l in s.links],
                    "Links.Attributes": [attrs(l.attributes) for l in s.links],
                    "Links.Flags": [l.flags for l in s.links],
                    "Links.DroppedAttributesCount": [l.dropped_attributes_count for l in s.links],
                }


def log_rows(req: Any) -> Iterator[dict[str, Any]]:
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            env = _envelope(rl.resource, rl.schema_url, sl.scope, sl.schema_url)
            for r in sl.log_records:
                yield {
                    "Timestamp": r.time_unix_nano or r.observed_time_unix_nano,
                    "ObservedTimestamp": r.observed_time_unix_nano,
                    "TraceId": hexid(r.trace_id, 16),
                    "SpanId": hexid(r.span_id, 8),
                    "TraceFlags": r.flags,
                    "SeverityText": r.severity_text,
                    "SeverityNumber": r.severity_number,
                    "ServiceName": env["ServiceName"],
                    "Body": render(r.body),
                    "EventName": r.event_name,
                    **{k: v for k, v in env.items() if k != "ServiceName"},
                    "LogAttributes": attrs(r.attributes),
                    "DroppedAttributesCount": r.dropped_attributes_count,
                }


def _exemplars(exs: Any) -> dict[str, Any]:
    return {
        "Exemplars.FilteredAttributes": [attrs(e.filtered_attributes) for e in exs],
        "Exemplars.TimeUnix": [e.time_unix_nano for e in exs],
        "Exemplars.Value": [float(getattr(e, e.WhichOneof("value"))) if e.WhichOneof("value") else 0.0 for e in exs],
        "Exemplars.SpanId": [hexid(e.span_id, 8) for e in exs],
        "Exemplars.TraceId": [hexid(e.trace_id, 16) for e in exs],
    }


def metric_rows(req: Any) -> Iterator[dict[str, Any]]:
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            env = _envelope(rm.resource, rm.schema_url, sm.scope, sm.schema_url)
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                temporality = getattr(data, "aggregation_temporality", 0)
                for p in data.data_points:
                    row: dict[str, Any] = {
                        "TimeUnix": p.time_unix_nano,
                        "StartTimeUnix": p.start_time_unix_nano,
                        "MetricName": m.name,
                        "MetricDescription": m.description,
                        "MetricUnit": m.unit,
                        "MetricType": METRIC_TYPES[kind],
                        "AggregationTemporality": TEMPORALITIES[temporality],
                        "IsMonotonic": bool(getattr(data, "is_monotonic", False)),
                        **env,
                        "Attributes": attrs(p.attributes),
                        "Flags": p.flags,
                        "Value": 0.0, "ValueInt": None, "Count": 0, "Sum": None, "Min": None, "Max": None,
                        "BucketCounts": [], "ExplicitBounds": [], "Scale": 0, "ZeroCount": 0, "ZeroThreshold": 0.0,
                        "PositiveOffset": 0, "PositiveBucketCounts": [], "NegativeOffset": 0, "NegativeBucketCounts": [],
                        "QuantileValues.Quantile": [], "QuantileValues.Value": [],
                        **_exemplars(getattr(p, "exemplars", [])),
                    }
                    if kind in ("gauge", "sum"):
                        which = p.WhichOneof("value")
                        if which == "as_int":
                            row["Value"], row["ValueInt"] = float(p.as_int), p.as_int
                        elif which == "as_double":
                            row["Value"] = p.as_double
                    else:
                        row["Count"] = p.count
                        row["Sum"] = p.sum if kind == "summary" or p.HasField("sum") else None
                    if kind in ("histogram", "exponential_histogram"):
                        row["Min"] = p.min if p.HasField("min") else None
                        row["Max"] = p.max if p.HasField("max") else None
                    if kind == "histogram":
                        row["BucketCounts"] = list(p.bucket_counts)
                        row["ExplicitBounds"] = list(p.explicit_bounds)
                    if kind == "exponential_histogram":
                        row.update(Scale=p.scale, ZeroCount=p.zero_count, ZeroThreshold=p.zero_threshold,
                                   PositiveOffset=p.positive.offset, PositiveBucketCounts=list(p.positive.bucket_counts),
                                   NegativeOffset=p.negative.offset, NegativeBucketCounts=list(p.negative.bucket_counts))
                    if kind == "summary":
                        row["QuantileValues.Quantile"] = [q.quantile for q in p.quantile_values]
                        row["QuantileValues.Value"] = [q.value for q in p.quantile_values]
                    yield row


# Read-back expressions for columns whose default client representation loses information.
def _nanos(c: str) -> str:
    return f"toUnixTimestamp64Nano({c})"


def _hex_array(c: str) -> str:
    return f"arrayMap(x -> hex(x), {c})"


def _nanos_array(c: str) -> str:
    return f"arrayMap(x -> toUnixTimestamp64Nano(x), {c})"


READBACK: dict[str, dict[str, str]] = {
    "otel_traces": {
        "Timestamp": _nanos("Timestamp"), "TraceId": "hex(TraceId)", "SpanId": "hex(SpanId)",
        "ParentSpanId": "hex(ParentSpanId)", "Events.Timestamp": _nanos_array("`Events.Timestamp`"),
        "Links.TraceId": _hex_array("`Links.TraceId`"), "Links.SpanId": _hex_array("`Links.SpanId`"),
    },
    "otel_logs": {
        "Timestamp": _nanos("Timestamp"), "ObservedTimestamp": _nanos("ObservedTimestamp"),
        "TraceId": "hex(TraceId)", "SpanId": "hex(SpanId)",
    },
    "otel_metrics": {
        "TimeUnix": _nanos("TimeUnix"), "StartTimeUnix": _nanos("StartTimeUnix"),
        "Exemplars.TimeUnix": _nanos_array("`Exemplars.TimeUnix`"),
        "Exemplars.SpanId": _hex_array("`Exemplars.SpanId`"), "Exemplars.TraceId": _hex_array("`Exemplars.TraceId`"),
    },
}


def read_back(client: Any, db: str, table: str, columns: list[str], order_by: str) -> list[dict[str, Any]]:
    """All rows of ``db.table`` as dicts of ``columns`` (test helper; identifiers are test-owned)."""
    exprs = [f"{READBACK[table].get(c, f'`{c}`')} AS `{c}`" for c in columns]
    result = client.query(f"SELECT {', '.join(exprs)} FROM {db}.{table} ORDER BY {order_by}")
    return [dict(zip(columns, row)) for row in result.result_rows]


def insert(client: Any, db: str, decoded: Any) -> None:
    """INSERT the blocks of a Decoded, one body per table (blocks of one table concatenated)."""
    by_table: dict[str, list[bytes]] = {}
    for table, _rows, block in decoded.blocks:
        by_table.setdefault(table, []).append(block)
    for table, blocks in by_table.items():
        client.raw_insert(f"{db}.{table}", insert_block=b"".join(blocks), fmt="Native")
