-- The resource attributes of log streams, read at one known record of each: {times} holds the time
-- of a record of each stream in {hashes} (of a service in {services}), so the primary key finds a
-- few granules and the Map column is read there only, not for every record of the window.
SELECT ResourceHash, ResourceAttributes
FROM otel_logs
WHERE TenantId = {tenant:String}
  AND ServiceName IN {services:Array(String)}
  AND toUnixTimestamp64Nano(Timestamp) IN {times:Array(Int64)}
  AND ResourceHash IN {hashes:Array(UInt64)}
LIMIT 1 BY ResourceHash
