-- Fragment after a `windows` CTE (promql/pushdown/windows.sql, promql/pushdown/windows_pairs.sql or
-- promql/pushdown/lagged_windows.sql): `{agg} by (group) ({fn}(selector[range]))` for {fn} = rate |
-- increase | delta, one row per group and step: Prometheus' extrapolatedRate (promql/functions.go)
-- per series and step, then the aggregation over the series of a group ({groups} gives each of
-- {series} its group). Windows of fewer than two samples have no value; a NaN first or last sample makes
-- the window's value NaN (a value: the aggregation's as in promql/pushdown/instant.sql); delta series
-- ({delta}) are running totals that start at the window's edge, so they are not extrapolated to a
-- zero point.
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
           n >= 2 AND sampled > 0 AS valued,
           growth * (extrapolated / sampled) / if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS x
    FROM windows
)
WHERE valued
GROUP BY gid, k
-- Lazily evaluated `if` branches recompute the window's columns they use once per branch: 0.85 s
-- instead of 0.2 s over a million counter points on the lagged path (nothing here can throw).
SETTINGS short_circuit_function_evaluation = 'disable'
