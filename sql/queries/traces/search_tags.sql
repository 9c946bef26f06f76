-- Trace search with tag filters: tags live on the spans, so this reads otel_traces within the window
-- (hourly partitions). A tag matches a span attribute, a resource attribute, or the status/kind tags.
SELECT hex(TraceId) AS trace_id, max(Timestamp) AS last_seen
FROM otel_traces
WHERE TenantId = {tenant:String}
  AND ({service:String} = '' OR ServiceName = {service:String})
  AND ({operation:String} = '' OR SpanName = {operation:String})
  AND ({span_kind:String} = '' OR SpanKind = {span_kind:String})
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND Duration >= {min_duration:UInt64}
  AND Duration <= {max_duration:UInt64}
  AND arrayAll((k, v) ->
        SpanAttributes[k] = v OR ResourceAttributes[k] = v
        OR (k = 'error' AND v = 'true' AND StatusCode = 'ERROR')
        OR (k = 'otel.status_code' AND v = toString(StatusCode))
        OR (k = 'span.kind' AND v = lower(toString(SpanKind))),
      {tag_keys:Array(String)}, {tag_values:Array(String)})
GROUP BY TraceId
ORDER BY last_seen DESC
LIMIT {limit:UInt32}
