-- Samples of the selected series pre-aggregated per bucket of {bucket_ns} ns counted from {origin_ns}
-- (bucket b covers (origin + (b-1)w, origin + b*w]), so a long range at a coarse step moves one row per
-- series and bucket instead of every sample. Per bucket: sample count, first and last sample, sum,
-- min, max and the counter-reset correction inside the bucket (the value before each drop), for the
-- point value, the histogram Count and Sum, and the first/last/summed histogram bucket counts.
SELECT
    SeriesId,
    intDiv(toUnixTimestamp64Nano(TimeUnix) - {origin_ns:Int64} + {bucket_ns:Int64} - 1, {bucket_ns:Int64}) AS b,
    count(),
    toUnixTimestamp64Nano(min(TimeUnix)),
    toUnixTimestamp64Nano(max(TimeUnix)),
    argMin(Value, TimeUnix), argMax(Value, TimeUnix), sum(Value), min(Value), max(Value),
    arraySum(arrayMap((x, y) -> if(y < x, x, 0),
             arrayPopBack(arrayMap(p -> p.2, arraySort(groupArray((TimeUnix, Value)))) AS vs), arrayPopFront(vs))),
    argMin(toFloat64(Count), TimeUnix), argMax(toFloat64(Count), TimeUnix), toFloat64(sum(Count)),
    arraySum(arrayMap((x, y) -> if(y < x, x, 0),
             arrayPopBack(arrayMap(p -> toFloat64(p.2), arraySort(groupArray((TimeUnix, Count)))) AS cs), arrayPopFront(cs))),
    argMin(ifNull(Sum, 0), TimeUnix), argMax(ifNull(Sum, 0), TimeUnix), sum(ifNull(Sum, 0)),
    arraySum(arrayMap((x, y) -> if(y < x, x, 0),
             arrayPopBack(arrayMap(p -> ifNull(p.2, 0), arraySort(groupArray((TimeUnix, Sum)))) AS ss), arrayPopFront(ss))),
    argMin(BucketCounts, TimeUnix), argMax(BucketCounts, TimeUnix), sumForEach(BucketCounts), any(ExplicitBounds)
FROM
(
    SELECT SeriesId, TimeUnix, Value, Count, Sum, BucketCounts, ExplicitBounds
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix > fromUnixTimestamp64Nano({origin_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
      -- Prometheus stale markers (remote write, 0x7ff0000000000002) are not samples of any window; here
      -- a stopped series is then still selected for up to the lookback, where the raw path ends it.
      AND reinterpretAsUInt64(Value) != 9218868437227405314
    UNION ALL
    -- Remote-written samples since migration 0012 (gauges: no Count, Sum or buckets).
    SELECT SeriesId, TimeUnix, Value, toUInt64(0), CAST(NULL, 'Nullable(Float64)'),
           CAST([], 'Array(UInt64)'), CAST([], 'Array(Float64)')
    FROM otel_prom_samples
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix > fromUnixTimestamp64Nano({origin_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND reinterpretAsUInt64(Value) != 9218868437227405314
)
GROUP BY SeriesId, b
ORDER BY SeriesId, b
