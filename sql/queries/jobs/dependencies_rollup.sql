-- Fill otel_service_dependencies_1h for one closed hour, every tenant at once, each tenant's rows
-- its own: children whose span started in the hour, joined to their parents (same tenant and
-- trace, started in the hour or the one before: the rule of dependencies/raw.sql). A trace id two
-- tenants both sent never joins across them. ReplacingMergeTree on (TenantId, TimeBucket, Parent,
-- Child) makes re-running an hour replace, not double, its counts; dependencies_mark_hour.sql then
-- records the hour as computed.
-- A background job beside ingest: one thread, and a grace hash join whose in-memory part stays
-- under max_bytes_in_join (an hour at 100,000 spans/s is 360M children against 720M candidates).
INSERT INTO otel_service_dependencies_1h (TenantId, TimeBucket, Parent, Child, CallCount, ErrorCount)
SELECT c.TenantId, toDateTime(intDiv({hour_ns:Int64}, 1000000000)) AS TimeBucket, p.ServiceName, c.ServiceName,
       count(), countIf(c.StatusCode = 'ERROR')
FROM
(
    SELECT TenantId, TraceId, ParentSpanId, ServiceName, StatusCode
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({hour_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({hour_ns:Int64}) + INTERVAL 1 HOUR
      AND ParentSpanId != toFixedString('\0\0\0\0\0\0\0\0', 8)
) AS c
INNER JOIN
(
    SELECT TenantId, TraceId, SpanId, ServiceName
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({hour_ns:Int64}) - INTERVAL 1 HOUR
      AND Timestamp < fromUnixTimestamp64Nano({hour_ns:Int64}) + INTERVAL 1 HOUR
) AS p
ON c.TenantId = p.TenantId AND c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE p.ServiceName != c.ServiceName
GROUP BY c.TenantId, p.ServiceName, c.ServiceName
SETTINGS max_threads = 1, join_algorithm = 'grace_hash', grace_hash_join_initial_buckets = 8,
         max_bytes_in_join = 268435456
