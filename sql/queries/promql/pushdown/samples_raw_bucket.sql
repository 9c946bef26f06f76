-- Fragment (CTE `samples`) for the bucket variants of the promql/pushdown fragments (windows, lags, ends, latest): a
-- histogram's `_bucket` samples (sid, t, v) in (start, end] from raw points, v holding the
-- cumulative count per bound (+Inf last), one `le` series per element. Points whose bucket counts
-- do not match their bounds are skipped (no buckets rather than wrong ones). Delta points become a
-- running total. A series' bounds are the same throughout the window (the service checked, in
-- promql/series_*.sql, and read them there), so results name them by an id ({bids}, per series).
WITH samples AS
(
    SELECT sid, t,
           if({running:UInt8}, sumForEach(x) OVER (PARTITION BY sid ORDER BY t ASC
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), x) AS v
    FROM
    (
        SELECT SeriesId AS sid, toUnixTimestamp64Nano(TimeUnix) AS t,
               CAST(arrayCumSum(BucketCounts), 'Array(Float64)') AS x
        FROM otel_metrics
        WHERE TenantId = {tenant:String}
          AND MetricName IN {names:Array(String)}
          AND SeriesId IN {series:Array(UInt64)}
          AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
          AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
          AND length(BucketCounts) = length(ExplicitBounds) + 1
    )
)
