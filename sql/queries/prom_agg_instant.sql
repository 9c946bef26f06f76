-- Fragment after a prom_agg_samples_* CTE: `{agg} by (group) (selector)` evaluated in ClickHouse, one
-- row per group and step. Step k ends at e_k = {e0_ns} + k * {step_ns}; a series' value there
-- is its last sample at or before e_k and after e_k - {lookback_ns}: each sample is copied to exactly
-- the steps it answers (from its time until the next sample or the lookback's end). Then the
-- aggregation over the series of a group, as in prom_agg_range.sql.
SELECT gid, k,
       multiIf({agg:String} = 'sum', sum(x), {agg:String} = 'avg', avg(x), {agg:String} = 'min', min(x),
               {agg:String} = 'max', max(x), toFloat64(count())) AS value
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           v AS x,
           arrayJoin(range(
               toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
               toUInt32(least({steps:UInt32}, greatest(0,
                   intDiv(least(t_next, t + {lookback_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
    FROM
    (
        SELECT sid, t, v,
               leadInFrame(t, 1, toInt64(9e18)) OVER (PARTITION BY sid ORDER BY t ASC
                                                      ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS t_next
        FROM samples
    )
)
WHERE NOT isNaN(x)
GROUP BY gid, k
