-- The label names of the given metrics' series in a window without reading every series (raw
-- points): their point attribute keys, and whether a resource names a service instance
-- (promql.series_labels makes the labels of these).
SELECT groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
FROM otel_metrics
WHERE MetricName IN {names:Array(String)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
