-- Record that otel_service_dependencies_1h holds an hour computed from the spans stored at
-- computed_ns (taken before the spans were read, so it never claims spans that came later): one
-- record per tenant with spans in the hour or the one before (a parent's hour), so each tenant's
-- reads (dependencies/final_hours.sql, scoped by tenant) see the hour as final. 'default' is always
-- recorded, as before tenancy. Reads only the TenantId column of two hourly partitions.
INSERT INTO otel_service_dependency_hours (TenantId, TimeBucket, ComputedAt)
SELECT TenantId, toDateTime(intDiv({hour_ns:Int64}, 1000000000)), fromUnixTimestamp64Nano({computed_ns:Int64})
FROM
(
    SELECT DISTINCT TenantId
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({hour_ns:Int64}) - INTERVAL 1 HOUR
      AND Timestamp < fromUnixTimestamp64Nano({hour_ns:Int64}) + INTERVAL 1 HOUR
    UNION DISTINCT
    SELECT 'default' AS TenantId
)
