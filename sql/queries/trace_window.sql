-- Time window of one trace (from the trace-id lookup), so the span read prunes to its partitions.
SELECT count() AS n, toUnixTimestamp64Nano(min(Start)) AS start_ns, toUnixTimestamp64Nano(max(End)) AS end_ns
FROM otel_trace_times
WHERE TraceId = toFixedString(unhex({trace_id:String}), 16)
