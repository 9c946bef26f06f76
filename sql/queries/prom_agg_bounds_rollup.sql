-- prom_agg_bounds_raw.sql over a rollup table ({table}): whether any selected histogram series
-- changed its bucket bounds in the window.
SELECT count()
FROM
(
    SELECT SeriesId
    FROM {table:Identifier}
    WHERE MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeBucket > toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000)) - INTERVAL {bucket_s:UInt32} SECOND
    GROUP BY SeriesId
    HAVING uniqExact(ExplicitBounds) > 1
)
