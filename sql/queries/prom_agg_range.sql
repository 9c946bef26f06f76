-- Fragment after prom_agg_samples_raw.sql / prom_agg_samples_rollup.sql: `{agg} by (group)
-- ({fn}(selector[range]))` for {fn} = rate | increase | delta, evaluated in ClickHouse, one row per
-- group and step. Step k ends at e_k = {e0_ns} + k * {step_ns} (the offset already applied); its
-- window is (e_k - {range_ns}, e_k]. Each sample is copied to the steps whose window holds it; per
-- series and step: count, first/last sample and the counter-reset correction (the value before each
-- drop, after the window's first sample); then Prometheus' extrapolatedRate (promql/functions.go);
-- then the aggregation over the series of a group ({groups} gives each of {series} its group).
-- Absent and NaN values are skipped, as the Python evaluator does.
SELECT gid, k,
       multiIf({agg:String} = 'sum', sum(x), {agg:String} = 'avg', avg(x), {agg:String} = 'min', min(x),
               {agg:String} = 'max', max(x), toFloat64(count())) AS value
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
           k,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t1 - t0) / 1e9 AS sampled,
           v1 - v0 + if({fn:String} = 'delta', 0, resets) AS growth,
           sampled / greatest(n - 1, 1) AS avg_between,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           if({fn:String} != 'delta' AND NOT {delta:UInt8} AND growth > 0 AND v0 >= 0 AND sampled * (v0 / growth) < to_window_start,
              sampled * (v0 / growth), to_window_start) AS to_start,
           (ek - t1) / 1e9 AS to_end,
           sampled + if(to_start < avg_between * 1.1, to_start, avg_between / 2)
                   + if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS extrapolated,
           if(n >= 2 AND sampled > 0,
              growth * (extrapolated / sampled) / if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1), nan) AS x
    FROM
    (
        SELECT sid, k, count() AS n, min(t) AS t0, max(t) AS t1, argMin(v, t) AS v0, argMax(v, t) AS v1,
               sum(dropped) - argMin(dropped, t) AS resets
        FROM
        (
            SELECT sid, t, v, if(v < prev, prev, 0) AS dropped,
                   arrayJoin(range(
                       toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                       toUInt32(least({steps:UInt32}, greatest(0, intDiv(t + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
            FROM
            (
                SELECT sid, t, v, lagInFrame(v, 1, v) OVER (PARTITION BY sid ORDER BY t ASC) AS prev
                FROM samples
            )
        )
        GROUP BY sid, k
    )
)
WHERE NOT isNaN(x)
GROUP BY gid, k
