-- Fragment (CTE `pairs`) after promql/pushdown/samples_rollup*.sql, before promql/pushdown/windows*_pairs.sql: for a
-- rollup whose samples sit at bucket ends, at least a bucket apart, and a window of two buckets
-- ({range_ns} = 2 x bucket), each step's window holds at most its last sample and the one before.
-- So each sample is the last of the steps k ending from its time until the next sample (or until the
-- previous one leaves the window), paired with the previous row (lagInFrame) as the first; windows
-- with one sample are left out (rate needs two). Step k ends at {e0_ns} + k * {step_ns}.
, pairs AS
(
    SELECT sid, k, t_prev, t, v_prev, v
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
