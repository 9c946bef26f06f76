-- Fragment (CTE `samples`) for the bucket variants of the promql/pushdown fragments (windows, pairs, latest): a
-- histogram's `_bucket` samples (sid, t, v) from a rollup table ({table}), one per rollup
-- bucket stamped at its end, v holding the cumulative count per bound (+Inf last): the last bucket
-- counts (cumulative) or their sums, made a running total when {running} (delta). FINAL merges a
-- bucket's partial rows in key order, cheaper than a GROUP BY over every bucket. Bounds as in
-- promql/pushdown/samples_raw_bucket.sql.
WITH samples AS
(
    SELECT sid, t,
           if({running:UInt8}, sumForEach(x) OVER (PARTITION BY sid ORDER BY t ASC
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), x) AS v
    FROM
    (
        SELECT SeriesId AS sid, toInt64(toUnixTimestamp(TimeBucket) + {bucket_s:UInt32}) * 1000000000 AS t,
               CAST(arrayCumSum(if({delta:UInt8}, finalizeAggregation(BucketCountsSum),
                                   finalizeAggregation(BucketCountsLast))), 'Array(Float64)') AS x,
               length(ExplicitBounds) AS nb
        FROM {table:Identifier} FINAL
        WHERE TenantId = {tenant:String}
          AND MetricName IN {names:Array(String)}
          AND SeriesId IN {series:Array(UInt64)}
          AND TimeBucket > toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
          AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
    )
    WHERE length(x) = nb + 1
)
