-- Fragment after a `windows` CTE (prom_agg_windows_buckets*.sql: per series and step n, t0, t1,
-- the first value v0 and the growth, reset-corrected unless {fn} = delta):
-- `{agg} by (group) ({fn}(x_bucket[range]))` for {fn} = rate | increase | delta, with a histogram's
-- buckets kept as one array per point (an element per `le`) so a histogram moves one row, not one
-- per bound: Prometheus' extrapolatedRate per element. Its interval factor is the same for every
-- element unless the extrapolation stops at the counter's zero point (to_zero < to_window_start),
-- which only an element with a small first value relative to its growth hits: only those rows pay
-- for a per-element lambda. Then per group, bounds and step: the number of series and the
-- element-wise sum, which the service combines per `le` (series with other bounds may share an `le`).
SELECT gid, bid, k, count(), sumForEach(x)
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid, k,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t1 - t0) / 1e9 AS sampled,
           sampled / greatest(n - 1, 1) AS avg_between,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           (ek - t1) / 1e9 AS to_end,
           {fn:String} != 'delta' AS counter,
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
    FROM windows
    -- Two samples a moment apart, as in Prometheus.
    WHERE n >= 2 AND t1 > t0
)
GROUP BY gid, bid, k
