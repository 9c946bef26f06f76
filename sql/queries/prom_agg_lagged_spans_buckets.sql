-- Fragment (CTE `spans`) after a prom_agg_lagged_firsts_*buckets.sql CTE: a row per series and step
-- (the window ending at step k, its first sample at t0, its last at t, j + 1 samples) with
-- Prometheus' extrapolatedRate parts; a row at step {steps} per sample that is `bad`.
, spans AS
(
    SELECT *,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t - t0) / 1e9 AS sampled,
           sampled / j AS avg_between,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           (ek - t) / 1e9 AS to_end,
           if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS per,
           sampled + if(to_window_start < avg_between * 1.1, to_window_start, avg_between / 2) AS with_start,
           if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS end_part
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
