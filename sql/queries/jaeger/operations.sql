-- Operations (span name and kind) of a service, from the hourly span rollup. Empty = any.
SELECT DISTINCT SpanName, toString(SpanKind)
FROM otel_span_stats_1h
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
  AND ({service:String} = '' OR ServiceName = {service:String})
  AND ({span_kind:String} = '' OR lower(toString(SpanKind)) = lower({span_kind:String}))
ORDER BY SpanName
