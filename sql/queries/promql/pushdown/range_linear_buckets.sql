-- Fragment after promql/pushdown/extrapolation_buckets.sql, instead of promql/pushdown/range_buckets.sql when no
-- window can stop at a counter's zero point (running totals of delta points, or {fn} = delta): each
-- window's growth times its factor, summed per group, bounds and step, with the number of series.
SELECT gid, bid, k, count(), sumForEach(growth * ((with_start + end_part) / sampled / per))
FROM spans
GROUP BY gid, bid, k
-- Blocks of a quarter the default size keep the bucket arrays in cache.
SETTINGS max_block_size = 16384
