-- Series of the given metrics in a window, from a rollup table ({table} chosen by the service).
SELECT SeriesId, MetricName, ServiceName, any(ResourceAttributes), any(Attributes)
FROM {table:Identifier}
WHERE MetricName IN {names:Array(String)}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY MetricName, ServiceName, SeriesId
