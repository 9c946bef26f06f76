-- Fragment (CTE `neighbours`) after a promql/pushdown/samples_*_bucket CTE ({running} = 0), for
-- `{fn}(x_bucket[range])` of delta points stored twice (a retried export) when a window spans several
-- steps: the other paths' running totals would count such a point twice. Each sample with its
-- increment (a delta point's own counts) and the distinct times of its series' samples within a
-- range before it (before_t, itself last) and after it (after_t, itself first), sorted. A step's
-- growth is then the sum of the increments of its window's samples but the first
-- (promql/pushdown/increments_buckets.sql). Frames are ordered by {unit_ns} (RANGE offsets are below 2^31:
-- microseconds up to a 35-minute range, then milliseconds; {range_units} >= the range, exact
-- comparisons follow). A point stored twice is one time here: peers is its number of copies, and
-- each copy adds its share.
, neighbours AS
(
    SELECT sid, t, v, peers,
           v AS inc,
           arrayFilter(x -> x <= t, near) AS before_t,
           arrayFilter(x -> x >= t, near) AS after_t,
           -- no earlier sample within a range: as if one was just out of it
           if(length(before_t) > 1, before_t[-2], t - {range_ns:Int64} - 1) AS t_prev
    FROM
    (
        SELECT sid, t, v, arraySort(groupArray(t) OVER near) AS all_t, arrayDistinct(all_t) AS near,
               countEqual(all_t, t) AS peers
        FROM samples
        WINDOW near AS (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                        RANGE BETWEEN {range_units:UInt32} PRECEDING AND {range_units:UInt32} FOLLOWING)
    )
)
