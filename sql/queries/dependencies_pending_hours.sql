-- Hours for the dependency job to compute, newest first: hours up to last_s that hold spans and
-- have no final record in otel_service_dependency_hours. otel_span_stats_1h (filled with every
-- span insert) lists the hours that hold spans without reading otel_traces; hours older than the
-- oldest stored span are left alone (recomputing them would find nothing).
SELECT toUnixTimestamp(TimeBucket) AS hour
FROM otel_span_stats_1h
WHERE TimeBucket <= toDateTime({last_s:UInt32})
  AND toUnixTimestamp(TimeBucket) >= (
      SELECT intDiv(toUnixTimestamp(min(Timestamp)), 3600) * 3600 FROM otel_traces HAVING count() > 0)
  AND TimeBucket NOT IN (
      SELECT TimeBucket
      FROM otel_service_dependency_hours
      WHERE TimeBucket <= toDateTime({last_s:UInt32})
      GROUP BY TimeBucket
      HAVING max(ComputedAt) >= TimeBucket + toIntervalSecond({final_after_s:UInt32}))
GROUP BY TimeBucket
ORDER BY TimeBucket DESC
LIMIT {limit:UInt32}
