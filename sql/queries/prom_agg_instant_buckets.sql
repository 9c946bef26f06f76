-- Fragment after a prom_agg_samples_*_bucket CTE: prom_agg_instant.sql for a histogram's `_bucket`
-- series kept as one array per point (an element per `le`): per group, bounds and step the number
-- of series and the element-wise sum of their last sample within the lookback.
SELECT gid, bid, k, count(), sumForEach(v)
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid, v,
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
GROUP BY gid, bid, k
