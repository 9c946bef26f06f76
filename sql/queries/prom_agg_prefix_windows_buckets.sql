-- Fragments (CTEs `ends`, `windows`) after a prom_agg_samples_*_bucket CTE (running totals for delta
-- points: {running} = {delta}), before prom_agg_extrapolation_buckets.sql: `{fn}(x_bucket[range])`
-- for windows of many samples (the lagged path reads five). A window's growth is its last value
-- minus its first, plus the value before each counter reset inside it (unless {fn} = delta), so a
-- sample is read only by the windows it ends, the windows it starts, and, where it follows a
-- reset, the windows holding it and its predecessor: about five rows per sample however long the
-- window, where copying a sample to every window holding it made window/step rows. Each window's
-- two ends then meet in one row per series and step. A time stored twice (a retried export) is one
-- sample of a cumulative series (its copy adds nothing); delta points stored twice were added twice
-- to the running total, so they give a row at step {steps} and the service takes the increments
-- path (prom_agg_neighbours_buckets.sql), which shares them.
, ends AS
(
    SELECT sid, t, tp, rank, v,
           -- the value before a reset, where an element dropped
           if(NOT {running:UInt8} AND {fn:String} != 'delta' AND arrayExists((a, b) -> a < b, v, vp),
              arrayMap((a, b) -> if(a < b, b, 0), v, vp), []) AS dropped,
           -- (step, role): 1 the window's last sample, 0 its first, 2 a reset inside it
           arrayJoin(arrayConcat(if({running:UInt8} AND tp = t, [(toUInt32({steps:UInt32}), toUInt8(1)), (toUInt32({steps:UInt32}), toUInt8(0))], []),
               arrayMap(k -> (k, toUInt8(1)), range(
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))),
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(least(tn, t + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))),
               arrayMap(k -> (k, toUInt8(0)), range(
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(greatest(t, tp + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))),
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))),
               arrayMap(k -> (k, toUInt8(2)), range(
                   toUInt32(greatest(0, least({steps:UInt32}, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))),
                   toUInt32(greatest(0, least({steps:UInt32}, if(empty(dropped), 0,
                       intDiv(tp + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))))) AS kr
    FROM
    (
        SELECT sid, t, v,
               lagInFrame(v, 1, v) OVER before AS vp,
               -- a missing neighbour is far away: no window holds it
               lagInFrame(t, 1, toInt64(-4e18)) OVER before AS tp,
               leadInFrame(t, 1, toInt64(4e18)) OVER (PARTITION BY sid ORDER BY t ASC
                                                   ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS tn,
               -- copies of a time share their rank, so a window's sample count is a difference of ranks
               dense_rank() OVER (PARTITION BY sid ORDER BY t ASC) AS rank  -- peers need the default frame
        FROM samples
        WINDOW before AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
)
, windows AS
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           k, n, t0, t1,
           last_v - first_v + arrayResize(resets, length(last_v), 0.) AS growth,
           -- the first value only where Prometheus' zero point may shorten the extrapolation (as in
           -- prom_agg_lagged_firsts_buckets.sql): rate/increase of cumulative points
           if(NOT {running:UInt8} AND {fn:String} != 'delta'
              AND arrayMin(first_v * toFloat64(t1 - t0) - growth * toFloat64(t0 - t_before)) < 0, first_v, []) AS v0
    FROM
    (
        SELECT sid, kr.1 AS k,
               anyIf(t, kr.2 = 1) AS t1, anyIf(t, kr.2 = 0) AS t0, anyIf(tp, kr.2 = 0) AS t_before,
               toUInt32(anyIf(rank, kr.2 = 1) - anyIf(rank, kr.2 = 0) + 1) AS n,
               sumForEachIf(v, kr.2 = 1) AS last_v, sumForEachIf(v, kr.2 = 0) AS first_v,
               sumForEachIf(dropped, kr.2 = 2) AS resets
        FROM ends
        GROUP BY sid, k
    )
    -- Two samples a moment apart, as in Prometheus; the row at step {steps} reports twins.
    WHERE k = {steps:UInt32} OR (n >= 2 AND t1 > t0)
)
