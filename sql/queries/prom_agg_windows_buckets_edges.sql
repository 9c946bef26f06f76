-- Fragment (CTE `windows`) after a prom_agg_samples_*_bucket CTE of cumulative points, before
-- prom_agg_range_buckets.sql: prom_agg_windows_buckets.sql for windows spanning several steps,
-- where copying each sample to every window holding it costs range / step copies of an array.
-- Here each series and step yields one row, made by the window's first sample (see
-- prom_agg_edges_buckets.sql for which steps a sample starts): it reads the window's last sample
-- and the count from its following samples within a range. Growth is read from g, the value with
-- counter resets corrected (a running sum of the value before each drop): the row's v1 is
-- v0 + g1 - g0 and its resets zero, so prom_agg_range_buckets.sql sees the corrected growth and
-- the raw first value its zero-point decision needs. Samples sharing a timestamp count in n; the
-- last of them in the stream starts the windows. ({fn} = delta, with no reset correction and no
-- per-element decision, takes prom_agg_edges_buckets.sql.)
, corrected AS
(
    SELECT sid, t, v,
           v + sumForEach(arrayMap((a, b) -> if(a < b, b, 0), v, prev)) OVER (PARTITION BY sid ORDER BY t ASC
                                                                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS g
    FROM
    (
        SELECT sid, t, v, lagInFrame(v, 1, v) OVER (PARTITION BY sid ORDER BY t ASC) AS prev
        FROM samples
    )
)
, windows AS
(
    SELECT sid, k, n, t AS t0, after_t[i] AS t1, v AS v0, v1, v1 - v1 AS resets
    FROM
    (
        SELECT sid, t, v, g, after_t, after_g,
               ifNull(arrayLastOrNull(x -> x < t, before_t), toInt64(-9e18)) AS t_prev,
               arrayJoin(range(
                   toUInt32(if(greatest(t, t_prev + {range_ns:Int64}) <= {e0_ns:Int64}, 0,
                               intDiv(greatest(t, t_prev + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k,
               {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
               arrayCount(x -> x > ek - {range_ns:Int64} AND x <= ek, after_t) AS n,
               arrayLastIndex(x -> x <= ek, after_t) AS i,
               v + (after_g[i] - g) AS v1
        FROM
        (
            SELECT sid, t, v, g, u, before_t, after.1 AS after_t, after.3 AS after_g
            FROM
            (
                SELECT sid, t, v, g, u,
                       arraySort(groupArray(t) OVER (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                                                     RANGE BETWEEN {range_units:UInt32} PRECEDING AND CURRENT ROW)) AS before_t,
                       arraySort(groupArray((t, u, g)) OVER (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                                                             RANGE BETWEEN CURRENT ROW AND {range_units:UInt32} FOLLOWING)) AS after
                FROM (SELECT sid, t, v, g, rowNumberInAllBlocks() AS u FROM corrected)
            )
            WHERE arrayCount(x -> x.1 = t AND x.2 > u, after) = 0
        )
    )
    -- Two samples a moment apart, as in Prometheus (range_buckets checks it again).
    WHERE n >= 2 AND after_t[i] > t
)
