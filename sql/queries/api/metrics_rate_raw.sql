-- The design's `rate`: per series the increase between consecutive points (a drop is a counter
-- reset: the new value counts from zero; delta sums contribute their values), summed per step bucket
-- and service, divided by the step. Points before the window only serve as the first predecessor.
SELECT bucket, ServiceName, sum(increase) / {step_s:UInt32}
FROM
(
    SELECT
        toUnixTimestamp(toStartOfInterval(TimeUnix, toIntervalSecond({step_s:UInt32}))) AS bucket,
        ServiceName,
        if(AggregationTemporality = 'Delta', Value,
           if(n = 1, 0, if(Value >= prev, Value - prev, Value))) AS increase
    FROM
    (
        SELECT TimeUnix, ServiceName, AggregationTemporality, Value,
               lagInFrame(Value) OVER w AS prev, row_number() OVER w AS n
        FROM otel_metrics
        WHERE TenantId = {tenant:String}
          AND MetricName = {metric:String}
          AND MetricType IN ('Sum')  -- histograms: Prometheus API (histogram_quantile)
          AND ({service:String} = '' OR ServiceName = {service:String})
          AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
          AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
        WINDOW w AS (PARTITION BY SeriesId ORDER BY TimeUnix ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
)
GROUP BY bucket, ServiceName
ORDER BY ServiceName, bucket
