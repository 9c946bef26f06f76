-- Fragment (CTE `windows`) after promql/pushdown/pairs.sql over promql/pushdown/samples_rollup_bucket.sql, before
-- promql/pushdown/extrapolation_buckets.sql: promql/pushdown/windows_pairs.sql for a histogram's `_bucket` series kept as
-- one array per point. Delta samples arrive as they are ({running} = 0): the growth between the two
-- is the last one.
, windows AS
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           k, 2 AS n, t_prev AS t0, t AS t1, v_prev AS v0,
           multiIf({delta:UInt8}, v, {fn:String} = 'delta', v - v_prev,
                   v - v_prev + arrayMap((a, b) -> if(a < b, b, 0), v, v_prev)) AS growth
    FROM pairs
    -- Two samples a moment apart, as in Prometheus.
    WHERE t1 > t0
)
