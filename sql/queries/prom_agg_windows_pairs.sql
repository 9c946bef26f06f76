-- Fragment (CTE `windows`) after prom_agg_samples_rollup.sql, before prom_agg_range.sql: what
-- prom_agg_windows.sql gives, for a rollup whose samples sit at bucket ends, at least a bucket
-- apart, and a window of two buckets ({range_ns} = 2 x bucket). Such a window holds at most the last
-- sample and the one before it, so no per-window aggregation is needed: each sample is the last of
-- the steps ending from its time until the next sample (or until the previous one leaves the
-- window), and the previous row (lagInFrame) is the first. Windows with one sample are left out
-- (rate needs two). Delta samples arrive as they are ({running} = 0): the growth between the two is
-- the last one, given as v1 over v0 = 0.
, windows AS
(
    SELECT sid, k, 2 AS n, t_prev AS t0, t AS t1, if({delta:UInt8}, 0, v_prev) AS v0, v AS v1,
           if({delta:UInt8} OR v >= v_prev, 0, v_prev) AS resets
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
