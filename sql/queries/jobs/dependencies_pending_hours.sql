-- Hours for the dependency job to compute, newest first: hours up to last_s that hold spans and
-- have no final record in otel_service_dependency_hours. otel_span_stats_1h (filled with every
-- span insert) lists the hours that hold spans without reading otel_traces; its buckets start at
-- the server's time zone's hours, which on a zone not a whole hour off UTC (+05:30) straddle two
-- UTC hours, so each bucket names both. Hours older than the oldest stored span are left alone
-- (recomputing them would find nothing). The job computes every tenant of an hour at once, so a
-- final record of any tenant marks the hour done.
SELECT hour
FROM
(
    SELECT DISTINCT arrayJoin([intDiv(toUnixTimestamp(TimeBucket), 3600) * 3600,
                               intDiv(toUnixTimestamp(TimeBucket) + 3599, 3600) * 3600]) AS hour
    FROM otel_span_stats_1h
    WHERE TimeBucket <= toDateTime({last_s:UInt32})
)
WHERE hour <= {last_s:UInt32}
  AND hour >= (SELECT intDiv(toUnixTimestamp(min(Timestamp)), 3600) * 3600 FROM otel_traces HAVING count() > 0)
  AND hour NOT IN (
      SELECT toUnixTimestamp(TimeBucket)
      FROM otel_service_dependency_hours
      WHERE TimeBucket <= toDateTime({last_s:UInt32})
      GROUP BY TimeBucket
      HAVING max(ComputedAt) >= TimeBucket + toIntervalSecond({final_after_s:UInt32}))
ORDER BY hour DESC
LIMIT {limit:UInt32}
