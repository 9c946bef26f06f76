-- Fragment (CTE `firsts`) after promql/pushdown/lags.sql ({lags} = 4) for cumulative points: as
-- promql/pushdown/lagged_firsts_delta_buckets.sql, the growth since a first sample being the sum of the
-- increments after it (per element the value's growth, or the value itself after a drop, a counter
-- reset, unless {fn} = delta), and the first value v0 where Prometheus' zero point may matter: it
-- shortens the extrapolation only if v0 * sampled < growth * to_start, to_start being below the
-- gap before the first sample. Elsewhere v0 is empty and the window's value is its growth times one
-- factor.
, firsts AS
(
    SELECT sid, t, t_next, bad, j, t0, t_before,
           multiIf(j = 1, V1, j = 2, V2, j = 3, V3, V4) AS first_v,
           arrayMap((a, b, c, d, e) -> if(a >= b OR {fn:String} = 'delta', a - b, a)
                                       + if(j >= 2, if(b >= c OR {fn:String} = 'delta', b - c, b), 0)
                                       + if(j >= 3, if(c >= d OR {fn:String} = 'delta', c - d, c), 0)
                                       + if(j >= 4, if(d >= e OR {fn:String} = 'delta', d - e, d), 0),
                    v, V1, V2, V3, V4) AS growth,
           if({fn:String} != 'delta' AND arrayMin(first_v * toFloat64(t - t0) - growth * toFloat64(t0 - t_before)) < 0,
              first_v, []) AS v0
    FROM
    (
        SELECT sid, t, t_next, bad, v, V1, V2, V3, V4,
               -- (j, first time, the time before it) of the windows ending in [t, next sample)
               arrayJoin(arrayFilter(w -> bad OR intDiv(greatest(t, w.3 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})
                                               < intDiv(least(t_next, w.2 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}),
                                     [(1, T1, T2), (2, T2, T3), (3, T3, T4), (4, T4, T5)])) AS w,
               w.1 AS j, w.2 AS t0, w.3 AS t_before
        FROM lagged
    )
)
