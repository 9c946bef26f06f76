-- Series of the given metrics in a window, with their labels' sources (raw points),
-- whether a histogram series changed its bucket bounds in it (compared by hash: a tenth of the
-- cost of comparing the arrays), and its bounds.
SELECT SeriesId, MetricName, ServiceName, any(ResourceAttributes), any(Attributes),
       uniqExact(cityHash64(ExplicitBounds)) > 1, any(ExplicitBounds)
FROM otel_metrics
WHERE MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
GROUP BY MetricName, ServiceName, SeriesId
