-- Metric catalog in a window (raw points): what each OTel metric is, to name it the Prometheus way,
-- and whether Prometheus remote write sent it (its name is then the Prometheus name, verbatim).
SELECT MetricName, toString(MetricType), toString(AggregationTemporality), IsMonotonic,
       any(MetricUnit), any(MetricDescription), max(ScopeName = 'otelingest.prometheus.remote_write')
FROM otel_metrics
WHERE TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
GROUP BY MetricName, MetricType, AggregationTemporality, IsMonotonic
