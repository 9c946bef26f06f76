-- Distinct values of one TraceQL attribute or intrinsic, with their kind letters (migration 0008),
-- on spans in the window matching %FILTER% (Tempo /api/search/tag/{tag}/values and its v2).
-- %EXISTS%, %TEXT%, %KIND% are a value source of tempo_fragments.sql; most frequent first.
SELECT %TEXT% AS value, %KIND% AS kind
FROM otel_traces
WHERE TenantId = {tenant:String}
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND %EXISTS%
  AND (%FILTER%)
GROUP BY value, kind
ORDER BY count() DESC, value
LIMIT {limit:UInt32}
