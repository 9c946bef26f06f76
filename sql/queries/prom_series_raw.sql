-- Series of the given metrics in a window, with their labels' sources (raw points).
SELECT SeriesId, MetricName, ServiceName, any(ResourceAttributes), any(Attributes)
FROM otel_metrics
WHERE MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
GROUP BY MetricName, ServiceName, SeriesId
