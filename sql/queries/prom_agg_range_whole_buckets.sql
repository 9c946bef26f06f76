-- Fragment after prom_agg_whole_windows_buckets.sql + prom_agg_increments_buckets.sql, instead of
-- prom_agg_range_buckets.sql (same result rows): as prom_agg_range_increments_buckets.sql, but the
-- windows evaluated whole are first summed per series (their growth) and given their first value,
-- then evaluated per element as prom_agg_range_buckets.sql does (the zero point may shorten the
-- extrapolation to the start: w.3 is to_start, w.6 the first value).
SELECT gid, bid, k, toUInt64(round(sum(c))), sumForEach(x)
FROM
(
    SELECT gid, bid, k, c,
           if(whole_sid = 0, sums,
              arrayMap((a0, g) -> g * ((w.1
                                        + if((if(g > 0 AND a0 >= 0 AND w.1 * (a0 / g) < w.3, w.1 * (a0 / g), w.3) AS to_start_z) < w.2 * 1.1,
                                             to_start_z, w.2 / 2)
                                        + if(w.4 < w.2 * 1.1, w.4, w.2 / 2)) / w.1) / w.5,
                       w.6, sums)) AS x
    FROM
    (
        SELECT gid, bid, k, if(exact, sid, 0) AS whole_sid,
               sumIf(1 / peers, t1 = t AND NOT first) AS c,
               sumForEach(inc * if(first, 0, if(exact, 1, extrapolated / sampled / per))) AS sums,
               anyIf((sampled, avg_between, to_start, to_end, per, v), first) AS w
        FROM terms
        GROUP BY gid, bid, k, whole_sid
    )
)
GROUP BY gid, bid, k
-- Blocks of a quarter the default size keep the bucket arrays in cache.
SETTINGS max_block_size = 16384
