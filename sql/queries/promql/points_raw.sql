-- Samples of the selected series in a window, oldest first per series (raw points).
-- Value for gauges and sums; Count, Sum, BucketCounts, ExplicitBounds for histograms.
-- Remote-written samples since migration 0012 are otel_prom_samples rows.
SELECT sid, t, Value, Count, s, BucketCounts, ExplicitBounds
FROM
(
    SELECT SeriesId AS sid, toUnixTimestamp64Nano(TimeUnix) AS t, Value, Count, ifNull(Sum, 0) AS s,
           BucketCounts, ExplicitBounds
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    UNION ALL
    SELECT SeriesId, toUnixTimestamp64Nano(TimeUnix), Value, toUInt64(0), toFloat64(0),
           CAST([], 'Array(UInt64)'), CAST([], 'Array(Float64)')
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
)
ORDER BY sid, t
