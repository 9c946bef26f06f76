-- Time windows of several traces at once (search results).
SELECT hex(TraceId) AS trace_id, toUnixTimestamp64Nano(min(Start)), toUnixTimestamp64Nano(max(End))
FROM otel_trace_times
WHERE TenantId = {tenant:String}
  AND TraceId IN (SELECT toFixedString(unhex(arrayJoin({trace_ids:Array(String)})), 16))
GROUP BY TraceId
