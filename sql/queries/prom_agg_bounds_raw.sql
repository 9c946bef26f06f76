-- Whether any selected histogram series changed its bucket bounds in (start, end]: then each `le`
-- is followed across the change by the Python evaluator instead of prom_agg_*_buckets.sql.
SELECT count()
FROM
(
    SELECT SeriesId
    FROM otel_metrics
    WHERE MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    GROUP BY SeriesId
    HAVING uniqExact(ExplicitBounds) > 1
)
