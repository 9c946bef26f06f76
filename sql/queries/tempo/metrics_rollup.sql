-- TraceQL metrics from the hourly span rollup (otel_span_stats_1h), for queries whose filter and
-- by() use only the service, span name and kind (the rollup's key) and whose step is whole hours:
-- a 30-day panel reads hundreds of rows per series instead of every span. Buckets as in
-- tempo_metrics_raw.sql; {origin_ns} and {step_ns} are whole hours. Durations in nanoseconds.
SELECT intDiv(toInt64(toUnixTimestamp(TimeBucket)) * 1000000000 - {origin_ns:Int64}, {step_ns:Int64}) AS bucket,
       %GROUPS% AS grp,
       sum(SpanCount), sum(ErrorCount), sum(DurationSum), min(DurationMin), max(DurationMax),
       quantilesTDigestMerge(0.5, 0.95, 0.99)(DurationQuantiles)
FROM otel_span_stats_1h
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
  AND TimeBucket < toDateTime(intDiv({end_ns:Int64}, 1000000000))
  AND (%FILTER%)
GROUP BY bucket, grp
