-- Fragment after promql/pushdown/neighbours_buckets.sql + promql/pushdown/increments_buckets.sql, instead of
-- promql/pushdown/range_buckets.sql (same result rows): `{agg} by (group) ({fn}(x_bucket[range]))` as the
-- sum over a step's rows of inc times their window's factor, per group, bounds and step; the number
-- of series from each window's last sample. A delta point stored twice adds half from each copy.
SELECT gid, bid, k, toUInt64(round(sumIf(1 / peers, t1 = t))),
       sumForEach(inc * (extrapolated / sampled / per / if({delta:UInt8}, peers, 1)))
FROM terms
GROUP BY gid, bid, k
-- Blocks of a quarter the default size keep the bucket arrays in cache.
SETTINGS max_block_size = 16384
