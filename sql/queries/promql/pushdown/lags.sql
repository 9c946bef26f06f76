-- Fragment (CTE `lagged`) after a promql/pushdown/samples_* CTE ({running} = 0 for a histogram's buckets):
-- the lagged path for `{fn}(x[range])` when a window spans several steps but holds few samples, as
-- the usual Grafana panel's does (rate(x[$__rate_interval]) spans four scrapes). A sample is the
-- last one of the windows ending between it and the next sample, and their first sample is one of
-- the {lags} before it: read with lagInFrame (times T1..T8 and values V1..V7, of which a consumer
-- reads its {lags}: 4 for a histogram's arrays, promql/pushdown/lagged_firsts_*buckets.sql, 7 for a
-- counter or gauge, promql/pushdown/lagged_windows.sql), so no sample is copied to every window holding
-- it. Another path answers instead when `bad`: a window of this query holding more than {lags} + 1
-- samples, or a time stored twice (a retried export, which the lags would count twice).
, lagged AS
(
    SELECT *,
           T1 = t OR greatest(0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))
                     < least({steps:UInt32}, intDiv(least(t_next, multiIf({lags:UInt8} = 4, T5, T8) + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})) AS bad
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
