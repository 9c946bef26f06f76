-- Samples of the selected series in a window, oldest first per series (raw points).
-- Value for gauges and sums; Count, Sum, BucketCounts, ExplicitBounds for histograms.
SELECT SeriesId, toUnixTimestamp64Nano(TimeUnix), Value, Count, ifNull(Sum, 0), BucketCounts, ExplicitBounds
FROM otel_metrics
WHERE MetricName IN {names:Array(String)}
  AND SeriesId IN {series:Array(UInt64)}
  AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
ORDER BY SeriesId, TimeUnix
