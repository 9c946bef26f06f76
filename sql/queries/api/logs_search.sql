-- The design's log search: newest first. Empty strings / zero bounds mean "any".
-- Severity matches the text (case-insensitive) or the OTel severity-number range of that level.
SELECT
    toUnixTimestamp64Nano(Timestamp), hex(TraceId), hex(SpanId), SeverityText, SeverityNumber,
    ServiceName, Body, ResourceAttributes, LogAttributes, ScopeName
FROM otel_logs
WHERE TenantId = {tenant:String}
  AND ({service:String} = '' OR ServiceName = {service:String})
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND ({severity:String} = ''
       OR upper(SeverityText) = upper({severity:String})
       OR SeverityNumber BETWEEN {severity_min:UInt8} AND {severity_max:UInt8})
  AND ({search:String} = '' OR positionCaseInsensitiveUTF8(Body, {search:String}) > 0)
ORDER BY Timestamp DESC
LIMIT {limit:UInt32}
