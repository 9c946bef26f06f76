-- Fragment after prom_agg_samples_rollup.sql: prom_agg_range.sql for {fn} = rate | increase | delta
-- over a rollup whose samples sit at bucket ends, at least a bucket apart, and a window of two
-- buckets ({range_ns} = 2 x bucket): as prom_agg_range_buckets_pairs.sql, such a window holds at
-- most the last sample and the one before it, so the previous row (lagInFrame) is all a step needs.
-- Delta samples arrive as they are ({running} = 0): the growth between the two is the last one.
SELECT gid, k,
       multiIf({agg:String} = 'sum', sum(x), {agg:String} = 'avg', avg(x), {agg:String} = 'min', min(x),
               {agg:String} = 'max', max(x), toFloat64(count())) AS value
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           k,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t1 - t0) / 1e9 AS sampled,
           sampled AS avg_between,
           if({delta:UInt8}, v1, v1 - v0 + if({fn:String} = 'delta' OR v1 >= v0, 0, v0)) AS growth,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           if({fn:String} != 'delta' AND NOT {delta:UInt8} AND growth > 0 AND v0 >= 0 AND sampled * (v0 / growth) < to_window_start,
              sampled * (v0 / growth), to_window_start) AS to_start,
           (ek - t1) / 1e9 AS to_end,
           sampled + if(to_start < avg_between * 1.1, to_start, avg_between / 2)
                   + if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS extrapolated,
           growth * (extrapolated / sampled) / if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS x
    FROM
    (
        SELECT sid, t AS t1, v AS v1, t_prev AS t0, v_prev AS v0,
               arrayJoin(range(
                   toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0,
                       intDiv(least(t_next, t_prev + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1,
                              {step_ns:Int64})))))) AS k
        FROM
        (
            SELECT sid, t, v,
                   lagInFrame(t, 1, toInt64(-9e18)) OVER w AS t_prev, lagInFrame(v, 1, v) OVER w AS v_prev,
                   leadInFrame(t, 1, toInt64(9e18)) OVER w AS t_next
            FROM samples
            WINDOW w AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
        )
        -- The previous sample must exist and be in the window: rate needs two samples.
        WHERE t_prev > toInt64(-9e18)
    )
)
WHERE NOT isNaN(x)
GROUP BY gid, k
