-- The latest metadata (type, help, unit) of each metric family Prometheus remote write sent in a
-- window (otel_metrics_metadata, migration 0008); {family} = '' for every family.
SELECT MetricFamilyName, argMax(Type, TimeUnix), argMax(Help, TimeUnix), argMax(Unit, TimeUnix)
FROM otel_metrics_metadata
WHERE TenantId = {tenant:String}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND ({family:String} = '' OR MetricFamilyName = {family:String})
GROUP BY MetricFamilyName
ORDER BY MetricFamilyName
