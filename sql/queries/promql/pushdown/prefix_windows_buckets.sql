-- Fragments (CTEs `drops`, `windows`) after promql/pushdown/prefix_ends.sql over a promql/pushdown/samples_*_bucket
-- CTE, before promql/pushdown/extrapolation_buckets.sql: `{fn}(x_bucket[range])` for windows of many samples
-- (the lagged path reads five), each window's two ends meeting in one row per series and step.
-- After a drop of any element (a counter reset) `dropped` holds each element's value before it.
, drops AS
(
    SELECT *,
           if(NOT {running:UInt8} AND {fn:String} != 'delta' AND arrayExists((a, b) -> a < b, v, vp),
              arrayMap((a, b) -> if(a < b, b, 0), v, vp), []) AS dropped,
           notEmpty(dropped) AS reset
    FROM adjacent
)
, windows AS
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
           k, n, t0, t1,
           last_v - first_v + arrayResize(resets, length(last_v), 0.) AS growth,
           -- the first value only where Prometheus' zero point may shorten the extrapolation (as in
           -- promql/pushdown/lagged_firsts_buckets.sql): rate/increase of cumulative points
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
