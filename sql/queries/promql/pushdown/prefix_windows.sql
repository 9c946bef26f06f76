-- Fragments (CTEs `drops`, `windows`) after promql/pushdown/prefix_ends.sql over a promql/pushdown/samples_* CTE,
-- before promql/pushdown/range.sql: the bucket version's pairing of each window's two ends
-- (promql/pushdown/prefix_windows_buckets.sql) for a counter or gauge whose windows hold more samples than
-- the lagged path reads (promql/pushdown/lags.sql). Rows as promql/pushdown/windows.sql gives; the row at step
-- {steps} that reports delta points stored twice has growth 0 over one second, so it is not
-- filtered out, and the service copies samples instead.
, drops AS
(
    SELECT *, if(NOT {running:UInt8} AND {fn:String} != 'delta' AND v < vp, vp, 0) AS dropped, dropped != 0 AS reset
    FROM adjacent
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
