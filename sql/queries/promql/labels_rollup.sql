-- promql/catalog_rollup.sql with each metric's point attribute keys and whether a resource names a
-- service instance (promql/labels_raw.sql from a rollup table, {table}).
SELECT MetricName, toString(MetricType), toString(AggregationTemporality), IsMonotonic,
       any(MetricUnit), '', max(ResourceAttributes['otelingest.source'] = 'prometheus.remote_write'),
       groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
FROM {table:Identifier}
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
