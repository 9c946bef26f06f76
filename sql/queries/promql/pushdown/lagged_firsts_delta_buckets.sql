-- Fragment (CTE `firsts`) after promql/pushdown/lags.sql ({lags} = 4) for delta points: per sample, each of the
-- samples before it that is the first of a window it ends (j = how many samples after that one),
-- with the growth since it, the sum of the delta points after it. No first value (an empty v0): the
-- counter's zero point is not used for running totals.
, firsts AS
(
    SELECT sid, t, t_next, bad, jj.1 AS j, jj.2 AS t0, jj.3 AS t_before, jj.4 AS growth,
           CAST([], 'Array(Float64)') AS v0
    FROM
    (
        SELECT sid, t, t_next, bad,
               v AS d1,
               arrayMap((s, a) -> s + a, d1, V1) AS d2,
               arrayMap((s, a) -> s + a, d2, V2) AS d3,
               -- (j, first time, the time before it, growth) of the windows ending in [t, next sample)
               arrayJoin(arrayFilter(w -> bad OR intDiv(greatest(t, w.3 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})
                                               < intDiv(least(t_next, w.2 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}),
                   [(1, T1, T2, d1), (2, T2, T3, d2), (3, T3, T4, d3), (4, T4, T5, arrayMap((s, a) -> s + a, d3, V3))])) AS jj
        FROM lagged
    )
)
