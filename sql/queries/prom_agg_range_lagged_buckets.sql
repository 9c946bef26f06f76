-- Fragment after prom_agg_lagged_firsts_buckets.sql + prom_agg_lagged_spans_buckets.sql, instead of
-- prom_agg_range_buckets.sql (same result rows): as prom_agg_range_lagged_delta_buckets.sql, but a
-- window with a first value (one whose counter may have started inside it) is evaluated per element
-- as prom_agg_range_buckets.sql does: the zero point may shorten the extrapolation to the start.
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
