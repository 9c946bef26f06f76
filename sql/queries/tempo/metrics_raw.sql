-- TraceQL metrics from raw spans: per step bucket (bucket b covers [origin + b*step, origin +
-- (b+1)*step)) and group (the by() values, tuples of tempo_fragments.sql value_tuple), the span
-- count, the numeric value's min/max/sum/count, and its log2 histogram (upper bound per bucket,
-- Tempo's buckets) for quantile_over_time / histogram_over_time. %FILTER% is the spanset filter;
-- %VALUE% the function's argument as Float64 (NULL when absent or not numeric), %BUCKET% its
-- histogram bucket (durations: a power of two nanoseconds, in seconds).
SELECT bucket, grp, count() AS spans, countIf(isNotNull(v)) AS n, min(v), max(v), sum(v),
       sumMapIf([ifNull(hb, 0)], [toUInt64(1)], {histogram:Bool} AND isNotNull(v))
FROM
(
    SELECT intDiv(toUnixTimestamp64Nano(Timestamp) - {origin_ns:Int64}, {step_ns:Int64}) AS bucket,
           %GROUPS% AS grp,
           %VALUE% AS v,
           %BUCKET% AS hb
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
)
GROUP BY bucket, grp
