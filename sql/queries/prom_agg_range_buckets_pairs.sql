-- Fragment after prom_agg_samples_rollup_bucket.sql: prom_agg_range_buckets.sql for a rollup whose
-- samples sit at bucket ends, at least a bucket apart, and a window of two buckets ({range_ns} =
-- 2 x bucket). Such a window holds at most two samples, the last and the one before it, so no
-- per-window aggregation is needed: each sample is the last of the steps ending from its time until
-- the next sample (or its window's end), and the previous sample (lagInFrame) is the first when it
-- lies in that step's window. Same arithmetic as prom_agg_range_buckets.sql. Delta samples arrive
-- as they are ({running} = 0): the growth between the two is the last one.
SELECT gid, any(bounds), k, count(), sumForEach(x)
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           bounds, cityHash64(bounds) AS bh, k,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t1 - t0) / 1e9 AS sampled,
           sampled AS avg_between,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           (ek - t1) / 1e9 AS to_end,
           {fn:String} != 'delta' AS counter,
           if({delta:UInt8}, v1, v1 - v0 + arrayMap((a, b) -> if(a < b, b, 0), v1, v0) * counter) AS growth,
           if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS per,
           sampled + if(to_window_start < avg_between * 1.1, to_window_start, avg_between / 2) AS with_start,
           if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS end_part,
           if(counter AND NOT {delta:UInt8} AND arrayMin(v0 * sampled - growth * to_window_start) < 0,
              arrayMap((a0, g) -> g * ((sampled
                                        + if((if(g > 0 AND a0 >= 0 AND sampled * (a0 / g) < to_window_start,
                                                 sampled * (a0 / g), to_window_start) AS to_start) < avg_between * 1.1,
                                             to_start, avg_between / 2)
                                        + end_part) / sampled) / per,
                       v0, growth),
              growth * ((with_start + end_part) / sampled / per)) AS x
    FROM
    (
        SELECT sid, bounds, t AS t1, v AS v1, t_prev AS t0, v_prev AS v0,
               arrayJoin(range(
                   toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0,
                       intDiv(least(t_next, t_prev + {range_ns:Int64}) - {e0_ns:Int64} + {step_ns:Int64} - 1,
                              {step_ns:Int64})))))) AS k
        FROM
        (
            SELECT sid, bounds, t, v,
                   lagInFrame(t, 1, toInt64(-9e18)) OVER w AS t_prev, lagInFrame(v, 1, v) OVER w AS v_prev,
                   leadInFrame(t, 1, toInt64(9e18)) OVER w AS t_next
            FROM samples
            WINDOW w AS (PARTITION BY sid, bounds ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
        )
        -- The previous sample must exist and be in the window: rate needs two samples.
        WHERE t_prev > toInt64(-9e18)
    )
)
GROUP BY gid, bh, k
