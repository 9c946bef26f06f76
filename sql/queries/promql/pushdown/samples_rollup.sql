-- Fragment (CTE `samples`) for promql/pushdown/ordered.sql, promql/pushdown/pairs.sql, promql/pushdown/latest.sql or
-- promql/pushdown/over_time.sql: samples (sid, t, v) of the selected series from a rollup table ({table}
-- chosen by the service), one per bucket stamped at the bucket's end, as promql/points_rollup.sql
-- gives them: the last value (cumulative) or the bucket's sum, made a running total when {running}
-- (delta), for {kind:String} = value | count | sum. FINAL merges a bucket's partial rows in key
-- order, cheaper than a GROUP BY over every bucket.
WITH samples AS
(
    SELECT sid, t,
           if({running:UInt8}, sum(x) OVER (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), x) AS v
    FROM
    (
        SELECT SeriesId AS sid,
               toInt64(toUnixTimestamp(TimeBucket) + {bucket_s:UInt32}) * 1000000000 AS t,
               multiIf({kind:String} = 'value', if({delta:UInt8}, ValueSum, finalizeAggregation(ValueLast)),
                       {kind:String} = 'count', toFloat64(if({delta:UInt8}, CountSum, finalizeAggregation(CountLast))),
                       if({delta:UInt8}, SumSum, finalizeAggregation(SumLast))) AS x
        FROM {table:Identifier} FINAL
        WHERE TenantId = {tenant:String}
          AND MetricName IN {names:Array(String)}
          AND SeriesId IN {series:Array(UInt64)}
          AND TimeBucket > toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
          AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
    )
)
