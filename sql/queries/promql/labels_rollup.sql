-- promql/catalog_rollup.sql with each metric's point attribute keys and whether a resource names a
-- service instance (promql/labels_raw.sql from a rollup table, {table}). OTLP rollup rows since
-- migration 0015 carry no maps: their series' keys come from otel_prom_series.
SELECT MetricName, MetricType, Temporality, IsMonotonic, Unit, '', RemoteWrite,
       arrayDistinct(arrayConcat(r.Keys, s.Keys)), r.Instance OR s.Instance
FROM
(
    SELECT MetricName, toString(MetricType) AS MetricType, toString(AggregationTemporality) AS Temporality,
           IsMonotonic, any(MetricUnit) AS Unit,
           max(ResourceAttributes['otelingest.source'] = 'prometheus.remote_write') AS RemoteWrite,
           groupUniqArrayArray(mapKeys(Attributes)) AS Keys,
           max(has(mapKeys(ResourceAttributes), 'service.instance.id')) AS Instance
    FROM {table:Identifier}
    WHERE TenantId = {tenant:String}
      AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
    GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
) AS r
LEFT JOIN
(
    SELECT MetricName, groupUniqArrayArray(mapKeys(Attributes)) AS Keys,
           max(has(mapKeys(ResourceAttributes), 'service.instance.id')) AS Instance
    FROM otel_prom_series
    WHERE TenantId = {tenant:String}
      AND toDate(TimeUnix) >= toDate(toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR)
      AND toDate(TimeUnix) <= toDate(toDateTime(intDiv({end_ns:Int64}, 1000000000)))
    GROUP BY MetricName
) AS s USING (MetricName)
