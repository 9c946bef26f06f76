-- Fragment after promql/pushdown/extrapolation_buckets.sql: `{agg} by (group) ({fn}(x_bucket[range]))` for
-- {fn} = rate | increase of cumulative points, with a histogram's buckets kept as one array per
-- point (an element per `le`) so a histogram moves one row, not one per bound: Prometheus'
-- extrapolatedRate per element. Its interval factor is the same for every element unless the
-- extrapolation stops at the counter's zero point (to_zero < to_window_start), which only an element
-- with a small first value relative to its growth hits: only those windows pay for a per-element
-- lambda (a window with an empty v0 has none). Then per group, bounds and step: the number of series
-- and the element-wise sum, which the service combines per `le` (series with other bounds may share
-- an `le`).
SELECT gid, bid, k, count(), sumForEach(x)
FROM
(
    SELECT gid, bid, k,
           if(notEmpty(v0) AND arrayExists((a0, g) -> a0 * sampled < g * to_window_start, v0, growth),
              arrayMap((a0, g) -> g * ((sampled
                                        + if((if(g > 0 AND a0 >= 0 AND sampled * (a0 / g) < to_window_start,
                                                 sampled * (a0 / g), to_window_start) AS to_start) < avg_between * 1.1,
                                             to_start, avg_between / 2)
                                        + end_part) / sampled) / per,
                       v0, growth),
              growth * ((with_start + end_part) / sampled / per)) AS x
    FROM spans
)
GROUP BY gid, bid, k
-- Blocks of a quarter the default size keep the bucket arrays in cache.
SETTINGS max_block_size = 16384
