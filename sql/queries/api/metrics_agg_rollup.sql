-- The design's metric aggregation over a rollup table ({table} is otel_metrics_5m or
-- otel_metrics_1h, chosen by the service, never by the client). Quantiles are t-digest estimates.
SELECT
    toUnixTimestamp(toStartOfInterval(TimeBucket, toIntervalSecond({step_s:UInt32}))) AS bucket,
    ServiceName,
    sum(ValueSum) / sum(Points), sum(ValueSum), min(ValueMin), max(ValueMax), toFloat64(sum(Points)),
    arrayMap(i -> q[i], [1, 3, 4]) AS qs,
    quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(ValueQuantiles) AS q
FROM
(
    SELECT TimeBucket, ServiceName, Points, ValueSum, ValueMin, ValueMax, ValueQuantiles
    FROM {table:Identifier}
    WHERE TenantId = {tenant:String}
      AND MetricName = {metric:String}
      AND MetricType IN ('Gauge', 'Sum')  -- histograms: Prometheus API (histogram_quantile)
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
)
GROUP BY bucket, ServiceName
ORDER BY ServiceName, bucket
