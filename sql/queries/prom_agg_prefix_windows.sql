-- Fragments (CTEs `ends`, `windows`) after a prom_agg_samples_* CTE, before prom_agg_range.sql: the
-- bucket version's pairing of each window's two ends (prom_agg_prefix_windows_buckets.sql) for a
-- counter or gauge whose windows hold more samples than the lagged path reads (prom_agg_lags.sql):
-- a sample is read by the windows it ends, the windows it starts and, where it follows a counter
-- reset, the windows holding it and its predecessor, instead of by every window holding it. Rows
-- as prom_agg_windows.sql gives. Delta points stored twice were added twice to the running total:
-- they give a row at step {steps} (growth 0 over one second) and the service copies samples instead.
, ends AS
(
    SELECT sid, t, tp, rank, v,
           -- the value before a reset
           if(NOT {running:UInt8} AND {fn:String} != 'delta' AND v < vp, vp, 0) AS dropped,
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
                   toUInt32(greatest(0, least({steps:UInt32}, if(dropped = 0, 0,
                       intDiv(tp + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))))) AS kr
    FROM
    (
        SELECT sid, t, v,
               lagInFrame(v, 1, v) OVER before AS vp,
               -- a missing neighbour is far away: no window holds it
               lagInFrame(t, 1, toInt64(-4e18)) OVER before AS tp,
               leadInFrame(t, 1, toInt64(4e18)) OVER (PARTITION BY sid ORDER BY t ASC
                                                   ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS tn,
               -- copies of a time share their rank (peers need the default frame)
               dense_rank() OVER (PARTITION BY sid ORDER BY t ASC) AS rank
        FROM samples
        WINDOW before AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
)
, windows AS
(
    SELECT sid, k,
           if(k = {steps:UInt32}, 2, n) AS n,
           if(k = {steps:UInt32}, t1 - 1000000000, t0) AS t0,
           t1,
           if(k = {steps:UInt32}, v1, v0) AS v0,
           v1,
           if(k = {steps:UInt32}, 0, resets) AS resets
    FROM
    (
        SELECT sid, kr.1 AS k,
               anyIf(t, kr.2 = 1) AS t1, anyIf(t, kr.2 = 0) AS t0,
               toUInt32(anyIf(rank, kr.2 = 1) - anyIf(rank, kr.2 = 0) + 1) AS n,
               anyIf(v, kr.2 = 1) AS v1, anyIf(v, kr.2 = 0) AS v0,
               sumIf(dropped, kr.2 = 2) AS resets
        FROM ends
        GROUP BY sid, k
    )
    -- Two samples a moment apart, as in Prometheus; the row at step {steps} reports twins.
    WHERE k = {steps:UInt32} OR (n >= 2 AND t1 > t0)
)
