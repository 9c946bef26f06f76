-- Fragment (CTE `increments`) after prom_agg_neighbours_buckets.sql for rate/increase of cumulative
-- buckets: Prometheus stops a counter's extrapolation at its zero point, per element, when the
-- first value is small next to the window's growth (to_zero = sampled * v0 / growth < to_start),
-- so those windows' values are not their growth times one factor. They are rare (a counter that
-- just started or reset), so each sample says whether a window it starts might be one (whole: its
-- value against the growth of all its samples within a range after it, the widest such window, with
-- the shortest sampled interval and the longest extrapolation) and every sample lists the samples
-- before it within a range that did (whole_before): those windows are summed per series and
-- evaluated whole, the rest stay linear.
, increments AS
(
    SELECT *, arraySort(groupArrayIf(t, whole) OVER (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                                                     RANGE BETWEEN {range_units:UInt32} PRECEDING AND CURRENT ROW)) AS whole_before
    FROM
    (
        SELECT *, length(after_t) > 1
                  AND arrayExists((a, g) -> a * ((after_t[2] - t) / 1e9) < g * (least(t - t_prev, {range_ns:Int64}) / 1e9), v, later) AS whole
        FROM
        (
            -- the increments after it within a range (and a little more: its unit's others too)
            SELECT *, arrayMap((x, y) -> x - y,
                               sumForEach(inc) OVER (PARTITION BY sid ORDER BY intDiv(t, {unit_ns:UInt64}) ASC
                                                     RANGE BETWEEN CURRENT ROW AND {range_units:UInt32} FOLLOWING), inc) AS later
            FROM neighbours
        )
    )
)
