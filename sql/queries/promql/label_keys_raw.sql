-- The label names of the given metrics' series in a window without reading every series (raw
-- points): their point attribute keys, and whether a resource names a service instance
-- (promql.series_labels makes the labels of these). Remote-written series since migration 0012:
-- the labels of otel_prom_series for the series otel_prom_samples has in the window.
SELECT groupUniqArrayArray(keys), max(instance)
FROM
(
    SELECT groupUniqArrayArray(mapKeys(Attributes)) AS keys,
           max(has(mapKeys(ResourceAttributes), 'service.instance.id')) AS instance
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    UNION ALL
    SELECT groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
    FROM otel_prom_series
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND toDate(TimeUnix) >= toDate(fromUnixTimestamp64Nano({start_ns:Int64}))
      AND toDate(TimeUnix) <= toDate(fromUnixTimestamp64Nano({end_ns:Int64}))
      AND SeriesId IN
      (
          SELECT DISTINCT SeriesId
          FROM otel_prom_samples
          WHERE TenantId = {tenant:String}
            AND MetricName IN {names:Array(String)}
            AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
            AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
      )
)
