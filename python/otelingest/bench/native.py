"""Decode + Native encode throughput of ``otelingest._native`` on one core, against a Python baseline.

Rates are items per CPU second of the measuring thread (one core), so a busy shared machine does
not distort them; the figures are per core.

The baseline is what a pure-Python receiver would do: decode with the official protobuf package
(upb) and build the same column-oriented rows (attributes rendered to text, ids, timestamps,
durations) in Python. Both run in this process, on the same pre-encoded requests, one after the
other. Run with ``otelingest bench native [--duration S] [--json PATH]``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Callable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelingest import _native

from .payloads import Payload, as_otlp_json, log_requests, metric_requests, trace_requests

REQUESTS = 32


# --- the Python baseline -------------------------------------------------------------------------

def _render(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return repr(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(str(v))  # arrays/kvlists: not in the benchmark payloads


def _attrs(kvs: Any) -> dict[str, str]:
    return {kv.key: _render(kv.value) for kv in kvs}


def py_traces(body: bytes) -> int:
    req = ExportTraceServiceRequest.FromString(body)
    cols: dict[str, list[Any]] = {}
    col = lambda name: cols.setdefault(name, [])  # noqa: E731
    n = 0
    for rs in req.resource_spans:
        res = _attrs(rs.resource.attributes)
        service = res.get("service.name", "unknown_service")
        for ss in rs.scope_spans:
            scope_attrs = _attrs(ss.scope.attributes)
            for s in ss.spans:
                col("Timestamp").append(s.start_time_unix_nano)
                col("TraceId").append(s.trace_id or b"\0" * 16)
                col("SpanId").append(s.span_id or b"\0" * 8)
                col("ParentSpanId").append(s.parent_span_id or b"\0" * 8)
                col("TraceState").append(s.trace_state)
                col("Flags").append(s.flags)
                col("SpanName").append(s.name)
                col("SpanKind").append(s.kind)
                col("ServiceName").append(service)
                col("ResourceAttributes").append(res)
                col("ResourceSchemaUrl").append(rs.schema_url)
                col("ScopeName").append(ss.scope.name)
                col("ScopeVersion").append(ss.scope.version)
                col("ScopeAttributes").append(scope_attrs)
                col("ScopeSchemaUrl").append(ss.schema_url)
                col("SpanAttributes").append(_attrs(s.attributes))
                col("Duration").append(max(0, s.end_time_unix_nano - s.start_time_unix_nano))
                col("StatusCode").append(s.status.code)
                col("StatusMessage").append(s.status.message)
                col("DroppedAttributesCount").append(s.dropped_attributes_count)
                col("DroppedEventsCount").append(s.dropped_events_count)
                col("DroppedLinksCount").append(s.dropped_links_count)
                col("Events.Timestamp").append([e.time_unix_nano for e in s.events])
                col("Events.Name").append([e.name for e in s.events])
                col("Events.Attributes").append([_attrs(e.attributes) for e in s.events])
                col("Events.DroppedAttributesCount").append([e.dropped_attributes_count for e in s.events])
                col("Links.TraceId").append([l.trace_id for l in s.links])
                col("Links.SpanId").append([l.span_id for l in s.links])
                col("Links.TraceState").append([l.trace_state for l in s.links])
                col("Links.Attributes").append([_attrs(l.attributes) for l in s.links])
                col("Links.Flags").append([l.flags for l in s.links])
                col("Links.DroppedAttributesCount").append([l.dropped_attributes_count for l in s.links])
                n += 1
    return n


def py_logs(body: bytes) -> int:
    req = ExportLogsServiceRequest.FromString(body)
    cols: dict[str, list[Any]] = {}
    col = lambda name: cols.setdefault(name, [])  # noqa: E731
    n = 0
    for rl in req.resource_logs:
        res = _attrs(rl.resource.attributes)
        service = res.get("service.name", "unknown_service")
        for sl in rl.scope_logs:
            scope_attrs = _attrs(sl.scope.attributes)
            for r in sl.log_records:
                col("Timestamp").append(r.time_unix_nano or r.observed_time_unix_nano)
                col("ObservedTimestamp").append(r.observed_time_unix_nano)
                col("TraceId").append(r.trace_id or b"\0" * 16)
                col("SpanId").append(r.span_id or b"\0" * 8)
                col("TraceFlags").append(r.flags)
                col("SeverityText").append(r.severity_text)
                col("SeverityNumber").append(r.severity_number)
                col("ServiceName").append(service)
                col("Body").append(_render(r.body))
                col("EventName").append(r.event_name)
                col("ResourceAttributes").append(res)
                col("ResourceSchemaUrl").append(rl.schema_url)
                col("ScopeName").append(sl.scope.name)
                col("ScopeVersion").append(sl.scope.version)
                col("ScopeAttributes").append(scope_attrs)
                col("ScopeSchemaUrl").append(sl.schema_url)
                col("LogAttributes").append(_attrs(r.attributes))
                col("DroppedAttributesCount").append(r.dropped_attributes_count)
                n += 1
    return n


def py_metrics(body: bytes) -> int:
    req = ExportMetricsServiceRequest.FromString(body)
    rows: list[dict[str, Any]] = []
    for rm in req.resource_metrics:
        res = _attrs(rm.resource.attributes)
        service = res.get("service.name", "unknown_service")
        for sm in rm.scope_metrics:
            scope_attrs = _attrs(sm.scope.attributes)
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                for p in data.data_points:
                    row = {
                        "TimeUnix": p.time_unix_nano, "StartTimeUnix": p.start_time_unix_nano, "MetricName": m.name,
                        "MetricDescription": m.description, "MetricUnit": m.unit, "MetricType": kind,
                        "AggregationTemporality": getattr(data, "aggregation_temporality", 0),
                        "IsMonotonic": getattr(data, "is_monotonic", False), "ServiceName": service,
                        "ResourceAttributes": res, "ScopeName": sm.scope.name, "ScopeVersion": sm.scope.version,
                        "ScopeAttributes": scope_attrs, "Attributes": _attrs(p.attributes), "Flags": p.flags,
                    }
                    if kind in ("gauge", "sum"):
                        which = p.WhichOneof("value")
                        row["Value"] = float(getattr(p, which)) if which else 0.0
                        row["ValueInt"] = p.as_int if which == "as_int" else None
                    else:
                        row["Count"] = p.count
                        row["Sum"] = p.sum
                    if kind == "histogram":
                        row["BucketCounts"] = list(p.bucket_counts)
                        row["ExplicitBounds"] = list(p.explicit_bounds)
                        row["Min"], row["Max"] = (p.min if p.HasField("min") else None), (p.max if p.HasField("max") else None)
                    elif kind == "exponential_histogram":
                        row.update(Scale=p.scale, ZeroCount=p.zero_count, PositiveOffset=p.positive.offset,
                                   PositiveBucketCounts=list(p.positive.bucket_counts), NegativeOffset=p.negative.offset,
                                   NegativeBucketCounts=list(p.negative.bucket_counts))
                    elif kind == "summary":
                        row["Quantiles"] = [(q.quantile, q.value) for q in p.quantile_values]
                    if kind != "summary":
                        row["Exemplars"] = [(_attrs(e.filtered_attributes), e.time_unix_nano, e.span_id, e.trace_id)
                                            for e in p.exemplars]
                    rows.append(row)
    return len(rows)


# --- measurement -----------------------------------------------------------------------------------

def _rate(fn: Callable[[bytes], Any], payloads: list[Payload], duration: float) -> float:
    """Items per CPU second of ``fn`` over the payloads, repeated for at least ``duration`` seconds.

    CPU time of this thread, not wall time: the decode runs on the calling thread (with the GIL
    released), and on a shared machine wall time measures the neighbours' load as much as the code.
    """
    items = 0
    fn(payloads[0].body)  # warm-up
    start, cpu_start = time.perf_counter(), time.thread_time()
    while True:
        for p in payloads:
            fn(p.body)
            items += p.items
        if time.perf_counter() - start >= duration:
            return items / (time.thread_time() - cpu_start)


def run(duration: float = 3.0) -> dict[str, float]:
    results: dict[str, float] = {}
    cases = [
        ("spans", trace_requests(REQUESTS), _native.decode_traces, py_traces),
        ("logs", log_requests(REQUESTS), _native.decode_logs, py_logs),
        ("points", metric_requests(REQUESTS), _native.decode_metrics, py_metrics),
    ]
    for name, payloads, native, baseline in cases:
        assert native(payloads[0].body).items == payloads[0].items == baseline(payloads[0].body)
        fast = _rate(native, payloads, duration)
        slow = _rate(baseline, payloads, duration)
        results[f"{name}_per_s"] = round(fast)
        results[f"baseline_{name}_per_s"] = round(slow)
        results[f"{name}_ratio" if name != "spans" else "ratio"] = round(fast / slow, 1)
        mb = sum(len(p.body) for p in payloads) / sum(p.items for p in payloads) * fast / 1e6
        print(f"{name:>6}: native {fast:>12,.0f}/s ({mb:,.0f} MB/s of protobuf)   "
              f"python {slow:>10,.0f}/s   ratio {fast / slow:6.1f}x", flush=True)
    # OTLP/JSON spans (the same requests), for reference: not part of the targets.
    payloads = [as_otlp_json(p, ExportTraceServiceRequest) for p in cases[0][1][:8]]
    json_rate = _rate(lambda b: _native.decode_traces(b, format="json"), payloads, duration)
    results["json_spans_per_s"] = round(json_rate)
    print(f"  json: native {json_rate:>12,.0f} spans/s (OTLP/JSON, hex ids)", flush=True)
    return results


def main(args: Any) -> int:
    duration = float(getattr(args, "duration", None) or 3.0)
    results = run(duration)
    path = getattr(args, "json", None)
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0
