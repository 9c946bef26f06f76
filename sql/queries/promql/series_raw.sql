-- Series of the given metrics in a window (raw points): service, whether a histogram series
-- changed its bucket bounds in it (compared by the hash stored at insert, migration 0007)
-- and its bounds. Their labels: promql/series_labels_raw.sql.
SELECT SeriesId, MetricName, ServiceName, uniqExact(BoundsHash) > 1, any(ExplicitBounds)
FROM otel_metrics
WHERE MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
GROUP BY MetricName, ServiceName, SeriesId
