-- Fragment (CTE `latest`) after a promql/pushdown/samples_* CTE, before promql/pushdown/instant*.sql: step k ends at
-- e_k = {e0_ns} + k * {step_ns}; a series' value there is its last sample at or before e_k and after
-- e_k - {lookback_ns}: each sample (sid, v) is copied to exactly the steps k it answers (from its
-- time until the next sample or the lookback's end).
, latest AS
(
    SELECT sid, v,
           arrayJoin(range(
               toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
               toUInt32(least({steps:UInt32}, greatest(0,
                   intDiv(least(t_next, t + {lookback_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
    FROM
    (
        SELECT sid, t, v,
               leadInFrame(t, 1, toInt64(9e18)) OVER (PARTITION BY sid ORDER BY t ASC
                                                      ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS t_next
        FROM samples
    )
)
