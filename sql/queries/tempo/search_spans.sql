-- TraceQL search, step two: every span of the candidate traces (read by TraceId, within their
-- windows) with the trace-level intrinsics (root span's name and service, trace duration) as
-- window functions, and %COLUMNS%: c<i> per spanset filter, then the values the answer shows.
-- Column order is the contract of otelingest.query.traceql.spansets.
SELECT hex(TraceId), hex(SpanId), hex(ParentSpanId), toUnixTimestamp64Nano(Timestamp), Duration,
       toString(SpanName), toString(ServiceName), RootServiceName, RootName, TraceDuration, TraceStart,
       %COLUMNS%
FROM
(
    SELECT *,
        anyIf(toString(ServiceName), ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)) OVER w AS RootServiceName,
        anyIf(toString(SpanName), ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)) OVER w AS RootName,
        toUInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration) OVER w - min(toUnixTimestamp64Nano(Timestamp)) OVER w) AS TraceDuration,
        min(toUnixTimestamp64Nano(Timestamp)) OVER w AS TraceStart
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND TraceId IN (SELECT toFixedString(unhex(arrayJoin({trace_ids:Array(String)})), 16))
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
    WINDOW w AS (PARTITION BY TraceId)
)
ORDER BY TraceId, Timestamp
