-- Fragment (CTE `windows`) after a promql/pushdown/lagged_firsts_*buckets.sql CTE, before
-- promql/pushdown/extrapolation_buckets.sql: a row per series and step (the window ending at step k, its
-- first sample at t0, its last at t, j + 1 samples); a row at step {steps} per sample that is `bad`.
, windows AS
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           k, j + 1 AS n, t0, t AS t1, v0, growth
    FROM
    (
        SELECT *, arrayJoin(if(bad, [toUInt32({steps:UInt32})], range(
                      toUInt32(greatest(0, least({steps:UInt32}, intDiv(greatest(t, t_before + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))),
                      toUInt32(greatest(0, least({steps:UInt32}, intDiv(least(t_next, t0 + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))) AS k
        FROM firsts
        -- Two samples a moment apart, as in Prometheus (a series' first sample has no window: its
        -- predecessor is far in the past).
        WHERE bad OR (t0 > -4e18 AND t > t0)
    )
)
