-- Record that otel_service_dependencies_1h holds an hour computed from the spans stored at
-- computed_ns (taken before the spans were read, so it never claims spans that came later).
INSERT INTO otel_service_dependency_hours (TimeBucket, ComputedAt)
SELECT toDateTime(intDiv({hour_ns:Int64}, 1000000000)), fromUnixTimestamp64Nano({computed_ns:Int64})
