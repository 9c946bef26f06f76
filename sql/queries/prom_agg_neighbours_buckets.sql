-- Fragment (CTE `neighbours`) after a prom_agg_samples_*_bucket CTE ({running} = 0), for
-- `{fn}(x_bucket[range])` when a window spans several steps: each sample with its increment since
-- the previous sample (per element: a delta point's own counts; a cumulative value's growth, or
-- the value itself after a drop, a counter reset, unless {fn} = delta) and the distinct times of
-- its series' samples within a range before it (before_t, itself last) and after it (after_t,
-- itself first), sorted. A step's growth is then the sum of the increments of its window's samples
-- but the first (prom_agg_increments_buckets.sql), so no array is copied to pair a window's edges.
-- Frames are ordered by {unit_ns} (RANGE offsets are below 2^31: microseconds up to a 35-minute range,
-- then milliseconds; {range_units} >= the range, exact comparisons follow). A point stored twice
-- (a retried export) is one time here and counts once: peers is its number of copies (a delta
-- copy adds its share; a cumulative copy's increment over its twin is zero).
, neighbours AS
(
    SELECT sid, t, v, peers,
           if({delta:UInt8}, v, arrayMap((a, b) -> if(a >= b OR {fn:String} = 'delta', a - b, a), v, prev)) AS inc,
           arrayFilter(x -> x <= t, near) AS before_t,
           arrayFilter(x -> x >= t, near) AS after_t,
           -- no earlier sample within a range: as if one was just out of it
           if(length(before_t) > 1, before_t[-2], t - {range_ns:Int64} - 1) AS t_prev
    FROM
    (
        SELECT sid, t, v, arraySort(groupArray(t) OVER near) AS all_t, arrayDistinct(all_t) AS near,
               countEqual(all_t, t) AS peers,
               lagInFrame(v, 1, v) OVER (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                                         ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev
        FROM samples
        WINDOW near AS (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                        RANGE BETWEEN {range_units:UInt32} PRECEDING AND {range_units:UInt32} FOLLOWING)
    )
)
