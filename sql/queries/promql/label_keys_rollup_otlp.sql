-- promql/label_keys_rollup.sql for metrics that only OTLP wrote: the rollup ({table}) alone,
-- without the branch through otel_prom_series.
SELECT groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
FROM {table:Identifier}
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
