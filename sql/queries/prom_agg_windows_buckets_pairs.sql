-- Fragment (CTE `windows`) after prom_agg_samples_rollup_bucket.sql, before
-- prom_agg_range_buckets.sql: prom_agg_windows_pairs.sql for a histogram's `_bucket` series kept as
-- one array per point. A two-bucket window over a rollup holds at most the last sample and the one
-- before it (lagInFrame), so no per-window aggregation is needed. Delta samples arrive as they are
-- ({running} = 0): the growth between the two is the last one.
, windows AS
(
    SELECT sid, k, 2 AS n, t_prev AS t0, t AS t1, v_prev AS v0,
           multiIf({delta:UInt8}, v, {fn:String} = 'delta', v - v_prev,
                   v - v_prev + arrayMap((a, b) -> if(a < b, b, 0), v, v_prev)) AS growth
    FROM
    (
        SELECT sid, t, v,
               lagInFrame(t, 1, toInt64(-9e18)) OVER w AS t_prev, lagInFrame(v, 1, v) OVER w AS v_prev,
               leadInFrame(t, 1, toInt64(9e18)) OVER w AS t_next
        FROM samples
        WINDOW w AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
    )
    ARRAY JOIN range(
        toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
        toUInt32(least({steps:UInt32}, greatest(0,
            intDiv(least(t_next, t_prev + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))) AS k
    WHERE t_prev > toInt64(-9e18)
)
