-- Exemplars Prometheus remote write sent for the given metrics in a window (otel_metrics_exemplars,
-- migration 0008), oldest first: each with its series' labels, matched to the series by the service.
SELECT MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix), Value, FilteredAttributes
FROM otel_metrics_exemplars
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
ORDER BY TimeUnix
LIMIT {limit:UInt32}
