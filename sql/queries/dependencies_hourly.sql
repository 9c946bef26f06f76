-- Service dependencies from the hourly rollup (FINAL: a re-computed hour replaces the old row).
SELECT Parent, Child, sum(CallCount), sum(ErrorCount)
FROM otel_service_dependencies_1h FINAL
WHERE TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
  AND TimeBucket < toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY Parent, Child
ORDER BY Parent, Child
