-- Samples of the selected series from a rollup table ({table} chosen by the service), one per bucket,
-- stamped at the bucket's end: the last value (cumulative) or the bucket's sum (delta).
SELECT SeriesId,
       (toUnixTimestamp(TimeBucket) + {bucket_s:UInt32}) * 1000000000,
       if(any(AggregationTemporality) = 'Delta', sum(ValueSum), argMaxMerge(ValueLast)),
       if(any(AggregationTemporality) = 'Delta', sum(CountSum), argMaxMerge(CountLast)),
       if(any(AggregationTemporality) = 'Delta', sum(SumSum), argMaxMerge(SumLast)),
       if(any(AggregationTemporality) = 'Delta', sumForEachMerge(BucketCountsSum), argMaxMerge(BucketCountsLast)),
       any(ExplicitBounds)
FROM {table:Identifier}
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND SeriesId IN {series:Array(UInt64)}
  AND TimeBucket > toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
  AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
GROUP BY SeriesId, TimeBucket
ORDER BY SeriesId, TimeBucket
