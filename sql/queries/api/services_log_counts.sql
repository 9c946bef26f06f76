-- Log records per service in the window.
SELECT ServiceName, count()
FROM otel_logs
WHERE TenantId = {tenant:String}
  AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
GROUP BY ServiceName
