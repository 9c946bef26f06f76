-- Metric catalog in a window from a rollup table ({table} chosen by the service); a rollup keeps
-- resources, not scopes, so remote write is told by its resource marker.
SELECT MetricName, toString(MetricType), toString(AggregationTemporality), IsMonotonic,
       any(MetricUnit), '', max(ResourceAttributes['otelingest.source'] = 'prometheus.remote_write')
FROM {table:Identifier}
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
