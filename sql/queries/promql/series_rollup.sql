-- Series of the given metrics in a window, from a rollup table ({table} chosen by the service):
-- service, whether a histogram series changed its bucket bounds in it (compared by hash) and its
-- bounds, and 0 (promql/series_raw.sql's narrow-table column). Their labels:
-- promql/series_labels_rollup.sql.
SELECT SeriesId, MetricName, ServiceName, uniqExact(cityHash64(ExplicitBounds)) > 1, any(ExplicitBounds), toUInt8(0)
FROM {table:Identifier}
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY MetricName, ServiceName, SeriesId
