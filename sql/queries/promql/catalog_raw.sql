-- Metric catalog in a window (raw points): what each OTel metric is, to name it the Prometheus way,
-- and whether Prometheus remote write sent it (its name is then the Prometheus name, verbatim).
-- Remote-written samples are otel_prom_samples rows since migration 0012 (a Gauge, no unit),
-- otel_metrics rows before it.
SELECT MetricName, MetricType, Temporality, IsMonotonic, any(Unit), any(Description), max(RemoteWrite)
FROM
(
    SELECT MetricName, toString(MetricType) AS MetricType, toString(AggregationTemporality) AS Temporality,
           IsMonotonic, any(MetricUnit) AS Unit, any(MetricDescription) AS Description,
           max(ScopeName = 'otelingest.prometheus.remote_write') AS RemoteWrite
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
    UNION ALL
    SELECT MetricName, 'Gauge', 'Unspecified', CAST(false, 'Bool'), '', '', toUInt8(1)
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY MetricName
)
GROUP BY MetricName, MetricType, Temporality, IsMonotonic
