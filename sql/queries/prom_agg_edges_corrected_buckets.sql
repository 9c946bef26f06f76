-- Fragment (CTE `corrected`) after a prom_agg_samples_*_bucket CTE of cumulative points, before
-- prom_agg_windows_edges.sql: each sample's value g with counter resets corrected, a running sum
-- of the value before each drop, per element.
, corrected AS
(
    SELECT sid, t, v,
           v + sumForEach(arrayMap((a, b) -> if(a < b, b, 0), v, prev)) OVER (PARTITION BY sid ORDER BY t ASC
                                                                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS g
    FROM
    (
        SELECT sid, t, v, lagInFrame(v, 1, v) OVER (PARTITION BY sid ORDER BY t ASC) AS prev
        FROM samples
    )
)
