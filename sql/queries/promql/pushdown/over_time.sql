-- Fragment after promql/pushdown/samples_raw.sql / promql/pushdown/samples_rollup.sql: `{agg} by (group)
-- ({fn}(selector[range]))` for {fn} = {count,sum,avg,min,max,last}_over_time, evaluated in
-- ClickHouse, one row per group and step. Step k ends at e_k = {e0_ns} + k * {step_ns}; its window is
-- (e_k - {range_ns}, e_k]. Each sample is copied to the steps whose window holds it; per series and
-- step the count, sum, min, max or last sample; then the aggregation over the series of a group, as
-- in promql/pushdown/range.sql. A NaN sample is a value, as in Prometheus: sum/avg_over_time and then sum
-- and avg are NaN, min and max (ClickHouse's, as Prometheus') skip it unless all are NaN.
SELECT gid, k,
       multiIf({agg:String} = 'sum', sum(x), {agg:String} = 'avg', avg(x), {agg:String} = 'min', min(x),
               {agg:String} = 'max', max(x), toFloat64(count())) AS value
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid, k,
           multiIf({fn:String} = 'count_over_time', toFloat64(count()),
                   {fn:String} = 'sum_over_time', sum(v),
                   {fn:String} = 'avg_over_time', sum(v) / count(),
                   {fn:String} = 'min_over_time', min(v),
                   {fn:String} = 'max_over_time', max(v),
                   argMax(v, t)) AS x
    FROM
    (
        SELECT sid, t, v,
               arrayJoin(range(
                   toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
        FROM samples
    )
    GROUP BY sid, k
)
GROUP BY gid, k
