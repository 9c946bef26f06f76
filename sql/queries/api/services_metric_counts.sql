-- Metric data points per service in the window, from the 5-minute rollup.
SELECT ServiceName, sum(Points)
FROM otel_metrics_5m
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toStartOfFiveMinutes(toDateTime(intDiv({start_ns:Int64}, 1000000000)))
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY ServiceName
