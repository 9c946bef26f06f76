-- The design's `rate`: per series and bucket the increase (last - first for cumulative sums,
-- the sum of deltas for delta sums), summed per service, divided by the step.
SELECT bucket, ServiceName, sum(increase) / {step_s:UInt32}
FROM
(
    SELECT
        toUnixTimestamp(toStartOfInterval(TimeUnix, toIntervalSecond({step_s:UInt32}))) AS bucket,
        ServiceName, SeriesId,
        if(any(AggregationTemporality) = 'Delta', sum(Value),
           argMax(Value, TimeUnix) - argMin(Value, TimeUnix)) AS increase
    FROM otel_metrics
    WHERE MetricName = {metric:String}
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY bucket, ServiceName, SeriesId
)
GROUP BY bucket, ServiceName
ORDER BY ServiceName, bucket
