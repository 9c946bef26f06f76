-- Fragment (CTE `lagged`) after a prom_agg_samples_*_bucket CTE ({running} = 0): the lagged path
-- for `{fn}(x_bucket[range])` when a window spans several steps but holds few samples, as the usual
-- Grafana panel's does (rate(x[$__rate_interval]) spans four scrapes). A sample is the last one of
-- the windows ending between it and the next sample, and their first sample is one of the five
-- before it: read with lagInFrame (times, and the values of four), no frame is gathered and no
-- array is copied per window. The increments path (prom_agg_neighbours_buckets.sql ...) answers
-- instead when `bad`: a window holding more than five samples, or a time stored twice (a retried
-- export, which the lags would count twice).
, lagged AS
(
    SELECT *,
           transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           -- some window ending in [t, next sample) reaches the fifth sample before t
           T1 = t OR intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})
                     < intDiv(least(t_next, T5 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}) AS bad
    FROM
    (
        SELECT sid, t, v,
               leadInFrame(t, 1, toInt64(4e18)) OVER (PARTITION BY sid ORDER BY t ASC
                                                   ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS t_next,
               -- a missing sample is far in the past: no window reaches it
               lagInFrame(t, 1, toInt64(-4e18)) OVER before AS T1,
               lagInFrame(t, 2, toInt64(-4e18)) OVER before AS T2,
               lagInFrame(t, 3, toInt64(-4e18)) OVER before AS T3,
               lagInFrame(t, 4, toInt64(-4e18)) OVER before AS T4,
               lagInFrame(t, 5, toInt64(-4e18)) OVER before AS T5,
               lagInFrame(v, 1, v) OVER before AS v1,
               lagInFrame(v, 2, v) OVER before AS v2,
               lagInFrame(v, 3, v) OVER before AS v3,
               lagInFrame(v, 4, v) OVER before AS v4
        FROM samples
        WINDOW before AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)
    )
)
