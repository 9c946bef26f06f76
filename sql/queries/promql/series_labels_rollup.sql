-- promql/series_labels_raw.sql from a rollup table ({table}).
SELECT SeriesId, any(ServiceName), any(ResourceAttributes), any(Attributes)
FROM {table:Identifier}
WHERE MetricName IN {names:Array(String)}
  AND SeriesId IN {series:Array(UInt64)}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY SeriesId
