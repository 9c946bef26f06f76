-- promql/label_keys_raw.sql for metrics that only OTLP wrote (the catalog says none of them is
-- remote-written): otel_metrics alone, without the branch through otel_prom_series.
SELECT groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
FROM otel_metrics
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
