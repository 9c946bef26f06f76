-- Fragment (CTE `lagged`) after a prom_agg_samples_* CTE, before prom_agg_lagged_windows.sql: the
-- lagged path for `{fn}(x[range])` of a counter or gauge when a window spans several steps (as the
-- bucket version, prom_agg_lags_buckets.sql). A sample is the last one of the windows ending between
-- it and the next sample, and their first sample is one of the seven before it: read with
-- lagInFrame, so no sample is copied to every window holding it and no aggregation per series and
-- step is needed. The copying path (prom_agg_ordered.sql ...) answers instead when `bad`: a window
-- of this query holding more than eight samples, or a time stored twice (a retried export, which the
-- lags would count twice).
, lagged AS
(
    SELECT *,
           T1 = t OR greatest(0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))
                     < least({steps:UInt32}, intDiv(least(t_next, T8 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})) AS bad
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
               lagInFrame(t, 6, toInt64(-4e18)) OVER before AS T6,
               lagInFrame(t, 7, toInt64(-4e18)) OVER before AS T7,
               lagInFrame(t, 8, toInt64(-4e18)) OVER before AS T8,
               lagInFrame(v, 1, v) OVER before AS V1,
               lagInFrame(v, 2, v) OVER before AS V2,
               lagInFrame(v, 3, v) OVER before AS V3,
               lagInFrame(v, 4, v) OVER before AS V4,
               lagInFrame(v, 5, v) OVER before AS V5,
               lagInFrame(v, 6, v) OVER before AS V6,
               lagInFrame(v, 7, v) OVER before AS V7
        FROM samples
        WINDOW before AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 8 PRECEDING AND CURRENT ROW)
    )
)
