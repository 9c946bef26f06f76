-- Fragment (CTE `windows`) after promql/pushdown/ordered.sql over a promql/pushdown/samples_*_bucket CTE, before
-- promql/pushdown/extrapolation_buckets.sql: promql/pushdown/windows.sql for a histogram's `_bucket` series kept as one
-- array per point (an element per `le`): per series and step the count, first sample array and
-- growth, reset-corrected per element (the value before each drop) unless {fn} = delta; with the
-- series' group and bounds id, for windows of two samples a moment apart (as in Prometheus).
, windows AS
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           k, n, t0, t1, v0, if({fn:String} = 'delta', v1 - v0, v1 - v0 + resets) AS growth
    FROM
    (
        SELECT sid, k, count() AS n, min(t) AS t0, max(t) AS t1, argMin(v, t) AS v0, argMax(v, t) AS v1,
               sumForEach(dropped) - argMin(dropped, t) AS resets
        FROM
        (
            SELECT sid, t, v, arrayMap((a, b) -> if(a < b, b, 0), v, prev) AS dropped,
                   arrayJoin(range(
                       toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                       toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
            FROM ordered
        )
        GROUP BY sid, k
    )
    WHERE n >= 2 AND t1 > t0
)
