-- Fragments (CTEs `adjacent`, `ends`) after a promql/pushdown/samples_* CTE, before
-- promql/pushdown/prefix_windows.sql or promql/pushdown/prefix_windows_buckets.sql, which define the CTE `drops`
-- (each sample's value before a counter reset, where it follows one: `dropped`, and `reset`) and
-- pair each window's two ends: `{fn}(x[range])` for windows of many samples. A window's growth is
-- its last value minus its first, plus the value before each counter reset inside it (unless {fn} =
-- delta), so a sample is read only by the windows it ends, the windows it starts and, where it
-- follows a reset, the windows holding it and its predecessor: about five rows per sample however
-- long the window, where copying a sample to every window holding it made window/step rows. A time
-- stored twice (a retried export) is one sample of a cumulative series (its copy adds nothing);
-- delta points stored twice were added twice to the running total ({running} = {delta}), so they
-- give a row at step {steps}, and the service takes a path that shares them between their copies.
, adjacent AS
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
, ends AS
(
    SELECT sid, t, tp, rank, v, dropped,
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
                   toUInt32(greatest(0, least({steps:UInt32}, if(NOT reset, 0,
                       intDiv(tp + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))))) AS kr
    FROM drops
)
