-- Fragment (CTE `increments`) after prom_agg_neighbours_buckets.sql when a window's value is its
-- growth times a factor of its times and count alone (running totals of delta points, or {fn} =
-- delta): no window is evaluated whole (see prom_agg_whole_windows_buckets.sql).
, increments AS
(
    SELECT *, false AS whole, CAST([], 'Array(Int64)') AS whole_before FROM neighbours
)
