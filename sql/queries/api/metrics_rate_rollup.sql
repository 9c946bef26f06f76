-- `rate` over a rollup table ({table} chosen by the service): increase per series and bucket.
SELECT bucket, ServiceName, sum(increase) / {step_s:UInt32}
FROM
(
    SELECT
        toUnixTimestamp(toStartOfInterval(TimeBucket, toIntervalSecond({step_s:UInt32}))) AS bucket,
        ServiceName, SeriesId,
        if(any(AggregationTemporality) = 'Delta', sum(ValueSum),
           argMaxMerge(ValueLast) - argMinMerge(ValueFirst)) AS increase
    FROM {table:Identifier}
    WHERE TenantId = {tenant:String}
      AND MetricName = {metric:String}
      AND MetricType IN ('Sum')  -- histograms: Prometheus API (histogram_quantile)
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000))
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
    GROUP BY bucket, ServiceName, SeriesId
)
GROUP BY bucket, ServiceName
ORDER BY ServiceName, bucket
