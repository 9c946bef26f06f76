-- Fragment (CTE `windows`) after promql/pushdown/pairs.sql, before promql/pushdown/range.sql: what
-- promql/pushdown/windows.sql gives, for a rollup's two-bucket windows (each a pair of samples, no
-- per-window aggregation). Delta samples arrive as they are ({running} = 0): the growth between the
-- two is the last one, given as v1 over v0 = 0.
, windows AS
(
    SELECT sid, k, 2 AS n, t_prev AS t0, t AS t1, if({delta:UInt8}, 0, v_prev) AS v0, v AS v1,
           if({delta:UInt8} OR v >= v_prev, 0, v_prev) AS resets
    FROM pairs
)
