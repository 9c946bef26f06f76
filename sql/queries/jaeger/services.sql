-- Services that produced spans (from the hourly span rollup: tiny, and covers the retention).
SELECT DISTINCT ServiceName
FROM otel_span_stats_1h
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
ORDER BY ServiceName
