-- Spans of the given traces, read only within their window (hourly partitions prune the rest).
-- Column order is the contract of otelingest.query.spans.Span. The attribute kinds (migration 0008)
-- hold one letter per map entry, '' for spans stored before them.
SELECT
    hex(TraceId), hex(SpanId), hex(ParentSpanId), TraceState, Flags, SpanName, toString(SpanKind),
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
    toUnixTimestamp64Nano(Timestamp), Duration, toString(StatusCode), StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
    arrayMap(t -> hex(t), Links.TraceId), arrayMap(s -> hex(s), Links.SpanId), Links.TraceState, Links.Attributes,
    ResourceAttributeKinds, SpanAttributeKinds, ScopeAttributes
FROM otel_traces
WHERE TenantId = {tenant:String}
  AND TraceId IN (SELECT toFixedString(unhex(arrayJoin({trace_ids:Array(String)})), 16))
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
ORDER BY TraceId, Timestamp
