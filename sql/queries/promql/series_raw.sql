-- Series of the given metrics in a window (raw points): service, whether a histogram series
-- changed its bucket bounds in it (compared by the hash stored at insert, migration 0007)
-- and its bounds. Their labels: promql/series_labels_raw.sql. Remote-written samples since
-- migration 0012 are otel_prom_samples rows (no bounds; the last column says a series has some).
SELECT SeriesId, MetricName, ServiceName, max(changed), any(bounds), max(narrow)
FROM
(
    SELECT SeriesId, MetricName, ServiceName, uniqExact(BoundsHash) > 1 AS changed, any(ExplicitBounds) AS bounds,
           toUInt8(0) AS narrow
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY MetricName, ServiceName, SeriesId
    UNION ALL
    SELECT DISTINCT SeriesId, MetricName, ServiceName, toUInt8(0), CAST([], 'Array(Float64)'), toUInt8(1)
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
)
GROUP BY MetricName, ServiceName, SeriesId
