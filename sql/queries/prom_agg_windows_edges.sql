-- Fragment (CTE `windows`) after prom_agg_edges_corrected_buckets.sql, before
-- prom_agg_range_buckets.sql: prom_agg_windows_buckets.sql for windows spanning several steps,
-- where copying each sample's array to every window holding it costs range / step copies.
-- Here each series and step yields one row, made by the window's first sample (see
-- prom_agg_edges_buckets.sql for which steps a sample starts): it reads the window's last sample
-- and the count from its following samples within a range. Growth is g1 - g0: the range fragment
-- gets the corrected growth and the raw first value its zero-point decision needs. A point stored
-- twice (a retried export) is one sample in n; the last copy in the stream starts the windows.
-- (Written for arrays and scalars alike, but for scalars, cheap to copy, it measured no faster
-- than prom_agg_windows.sql.)
, windows AS
(
    SELECT sid, w.1 AS k, w.2 AS n, t AS t0, w.3 AS t1, v AS v0, w.4 AS growth
    FROM
    (
        SELECT sid, t, v,
               ifNull(arrayLastOrNull(x -> x < t, before_t), toInt64(-9e18)) AS t_prev,
               -- the steps this sample starts, each with its window's count and last sample: only the
               -- growth that step needs is copied with it
               arrayFilter(w -> w.2 >= 2, arrayMap(k -> (k, arrayCount(x -> x <= {e0_ns:Int64} + toInt64(k) * {step_ns:Int64}, after_t) AS m,
                                                           after_t[m], after_g[m] - g),
                   range(
                   toUInt32(if(greatest(t, t_prev + {range_ns:Int64}) <= {e0_ns:Int64}, 0,
                               intDiv(greatest(t, t_prev + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))))))) AS starts
        FROM
        (
            -- a frame holds the unit's other samples too; a timestamp counts once. after_t: the
            -- samples in [t, t + range] (and a little after), sorted, t first.
            SELECT sid, t, v, g, u, before_t, arrayFilter(x -> x.1 >= t, after) AS later,
                   arrayFilter((x, i) -> i = 1 OR x.1 != later[i - 1].1, later, arrayEnumerate(later)) AS once,
                   once.1 AS after_t, once.3 AS after_g
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
    -- Two samples a moment apart, as in Prometheus (n >= 2 and a timestamp counting once).
    ARRAY JOIN starts AS w
)
