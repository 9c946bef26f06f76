-- Fragment (CTE `windows`) after promql/pushdown/lags.sql, before promql/pushdown/range.sql: a row per series and
-- step whose window holds two samples or more, as promql/pushdown/windows.sql gives (sample count n, first
-- and last times and values, the drops to add back for counter resets), read from the window's last
-- sample and its lags; j samples before it are in the window. A sample that is `bad` gives a row at
-- step {steps} instead (growth 0 over one second, so it is not filtered out), which tells the
-- service to take the copying path.
, windows AS
(
    SELECT sid, k,
           if(bad, 2, j + 1) AS n,
           if(bad, t - 1000000000, multiIf(j = 1, T1, j = 2, T2, j = 3, T3, j = 4, T4, j = 5, T5, j = 6, T6, T7)) AS t0,
           t AS t1,
           if(bad, 0, multiIf(j = 1, V1, j = 2, V2, j = 3, V3, j = 4, V4, j = 5, V5, j = 6, V6, V7)) AS v0,
           if(bad, 0, v) AS v1,
           if(bad, 0, if(v < V1, V1, 0) + if(j >= 2 AND V1 < V2, V2, 0) + if(j >= 3 AND V2 < V3, V3, 0)
                      + if(j >= 4 AND V3 < V4, V4, 0) + if(j >= 5 AND V4 < V5, V5, 0)
                      + if(j >= 6 AND V5 < V6, V6, 0) + if(j >= 7 AND V6 < V7, V7, 0)) AS resets
    FROM
    (
        SELECT sid, t, bad, T1, T2, T3, T4, T5, T6, T7, v, V1, V2, V3, V4, V5, V6, V7,
               -- windows ending in [t, next sample) that still reach the sample before t
               arrayJoin(if(bad, [toUInt32({steps:UInt32})], range(
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))),
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(least(t_next, T1 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))) AS k,
               {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} - {range_ns:Int64} AS since,
               toUInt8((T1 > since) + (T2 > since) + (T3 > since) + (T4 > since) + (T5 > since) + (T6 > since) + (T7 > since)) AS j
        FROM lagged
    )
)
