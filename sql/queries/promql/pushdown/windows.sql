-- Fragment (CTE `windows`) after promql/pushdown/ordered.sql, before promql/pushdown/range.sql: each series' samples
-- in each step's window. Step k ends at e_k = {e0_ns} + k * {step_ns} (the offset already applied);
-- its window is (e_k - {range_ns}, e_k]. Each sample is copied to the steps whose window holds it;
-- per series and step: count, first/last sample and the counter-reset correction (the value before
-- each drop, after the window's first sample).
, windows AS
(
    SELECT sid, k, count() AS n, min(t) AS t0, max(t) AS t1, argMin(v, t) AS v0, argMax(v, t) AS v1,
           sum(dropped) - argMin(dropped, t) AS resets
    FROM
    (
        SELECT sid, t, v, if(v < prev, prev, 0) AS dropped,
               arrayJoin(range(
                   toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
        FROM ordered
    )
    GROUP BY sid, k
)
