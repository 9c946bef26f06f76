-- Fragment (CTE `spans`) after a `windows` CTE of a histogram's buckets (promql/pushdown/windows_buckets*.sql
-- or promql/pushdown/lagged_windows_buckets.sql: per series and step its group and bounds id, the window's
-- sample count n, first and last times t0 and t1, the first value v0 and the growth), before
-- promql/pushdown/range_buckets.sql or promql/pushdown/range_linear_buckets.sql: the parts of Prometheus'
-- extrapolatedRate, whose interval factor is the same for every element of a window.
, spans AS
(
    SELECT gid, bid, k, v0, growth,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           (t1 - t0) / 1e9 AS sampled,
           sampled / greatest(n - 1, 1) AS avg_between,
           (t0 - (ek - {range_ns:Int64})) / 1e9 AS to_window_start,
           (ek - t1) / 1e9 AS to_end,
           if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS per,
           sampled + if(to_window_start < avg_between * 1.1, to_window_start, avg_between / 2) AS with_start,
           if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS end_part
    FROM windows
)
