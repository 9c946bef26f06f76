-- promql/catalog_raw.sql with each metric's point attribute keys and whether a resource names a
-- service instance: /api/v1/labels in one scan instead of the catalog and then the keys of the
-- metrics it names. Remote-written series' labels are in otel_prom_series: read by name after it
-- (promql/label_keys_raw.sql).
SELECT MetricName, MetricType, Temporality, IsMonotonic, any(Unit), any(Description), max(RemoteWrite),
       groupUniqArrayArray(Keys), max(Instance)
FROM
(
    SELECT MetricName, toString(MetricType) AS MetricType, toString(AggregationTemporality) AS Temporality,
           IsMonotonic, any(MetricUnit) AS Unit, any(MetricDescription) AS Description,
           max(ScopeName = 'otelingest.prometheus.remote_write') AS RemoteWrite,
           groupUniqArrayArray(mapKeys(Attributes)) AS Keys,
           max(has(mapKeys(ResourceAttributes), 'service.instance.id')) AS Instance
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
    UNION ALL
    SELECT MetricName, 'Gauge', 'Unspecified', CAST(false, 'Bool'), '', '', toUInt8(1), CAST([], 'Array(String)'),
           false
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY MetricName
)
GROUP BY MetricName, MetricType, Temporality, IsMonotonic
