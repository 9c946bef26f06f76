-- Fragment (CTE `firsts`) after prom_agg_lags_buckets.sql for cumulative points: as
-- prom_agg_lagged_firsts_delta_buckets.sql, the growth since a first sample being the sum of the
-- increments after it (per element the value's growth, or the value itself after a drop, a counter
-- reset, unless {fn} = delta), and the first value v0 where Prometheus' zero point may matter:
-- without a reset v0 = v - growth, and the zero point shortens the extrapolation only if
-- v0 * sampled < growth * to_start, to_start being below the gap before the first sample. Elsewhere
-- v0 is empty and the window's value is its growth times one factor.
, firsts AS
(
    SELECT t, t_next, gid, bid, bad, jj.1 AS j, jj.2 AS t0, jj.3 AS t_before, jj.4 AS growth, jj.5 AS v0
    FROM
    (
        SELECT t, t_next, gid, bid, bad,
               arrayMap((a, b) -> if(a >= b OR {fn:String} = 'delta', a - b, a), v, v1) AS d1,
               arrayMap((s, a, b) -> s + if(a >= b OR {fn:String} = 'delta', a - b, a), d1, v1, v2) AS d2,
               arrayMap((s, a, b) -> s + if(a >= b OR {fn:String} = 'delta', a - b, a), d2, v2, v3) AS d3,
               arrayMap((s, a, b) -> s + if(a >= b OR {fn:String} = 'delta', a - b, a), d3, v3, v4) AS d4,
               {fn:String} != 'delta' AS counter,
               counter AND arrayExists((a, b) -> a < b, v, v1) AS r1,
               r1 OR (counter AND arrayExists((a, b) -> a < b, v1, v2)) AS r2,
               r2 OR (counter AND arrayExists((a, b) -> a < b, v2, v3)) AS r3,
               r3 OR (counter AND arrayExists((a, b) -> a < b, v3, v4)) AS r4,
               -- (j, first time, the time before it, growth, first value or []) of the windows
               -- ending in [t, next sample)
               arrayJoin(arrayFilter(w -> bad OR intDiv(greatest(t, w.3 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})
                                               < intDiv(least(t_next, w.2 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}),
                   [(1, T1, T2, d1, if(r1 OR (counter AND arrayExists((a, d) -> a - d * (1 + (T1 - T2) / (t - T1)) < 0, v, d1)), v1, [])),
                    (2, T2, T3, d2, if(r2 OR (counter AND arrayExists((a, d) -> a - d * (1 + (T2 - T3) / (t - T2)) < 0, v, d2)), v2, [])),
                    (3, T3, T4, d3, if(r3 OR (counter AND arrayExists((a, d) -> a - d * (1 + (T3 - T4) / (t - T3)) < 0, v, d3)), v3, [])),
                    (4, T4, T5, d4, if(r4 OR (counter AND arrayExists((a, d) -> a - d * (1 + (T4 - T5) / (t - T4)) < 0, v, d4)), v4, []))])) AS jj
        FROM lagged
    )
)
