-- Per-service span statistics from the hourly rollup (never raw spans), for the window's hours.
SELECT ServiceName, sum(SpanCount), sum(ErrorCount),
       quantilesTDigestMerge(0.5, 0.95, 0.99)(DurationQuantiles)
FROM otel_span_stats_1h
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toStartOfHour(toDateTime(intDiv({start_ns:Int64}, 1000000000)))
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY ServiceName
ORDER BY ServiceName
