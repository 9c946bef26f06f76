-- The design's metric aggregation over raw points: per step bucket and service.
SELECT
    toUnixTimestamp(toStartOfInterval(TimeUnix, toIntervalSecond({step_s:UInt32}))) AS bucket,
    ServiceName,
    avg(Value), sum(Value), min(Value), max(Value), toFloat64(count()),
    quantilesExact(0.5, 0.95, 0.99)(Value)
FROM
(
    SELECT TimeUnix, ServiceName, Value
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName = {metric:String}
      AND MetricType IN ('Gauge', 'Sum')  -- histograms: Prometheus API (histogram_quantile)
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    UNION ALL
    -- Remote-written samples since migration 0012 (gauges).
    SELECT TimeUnix, ServiceName, Value
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND MetricName = {metric:String}
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
)
GROUP BY bucket, ServiceName
ORDER BY ServiceName, bucket
