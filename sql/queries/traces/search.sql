-- Trace search through the index: traces having a span of the service (and operation, kind) in
-- the window within the duration bounds, newest first. Empty strings / zero bounds mean "any".
SELECT hex(TraceId) AS trace_id, max(Timestamp) AS last_seen
FROM otel_trace_index
WHERE TenantId = {tenant:String}
  AND ({service:String} = '' OR ServiceName = {service:String})
  AND ({operation:String} = '' OR SpanName = {operation:String})
  AND ({span_kind:String} = '' OR SpanKind = {span_kind:String})
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND Duration >= {min_duration:UInt64}
  AND Duration <= {max_duration:UInt64}
GROUP BY TraceId
ORDER BY last_seen DESC
LIMIT {limit:UInt32}
