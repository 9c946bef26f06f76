-- Service dependencies of whole hours from the hourly rollup: the runs [from_s, to_s) of hours that
-- dependencies_final_hours.sql vouched for (FINAL: a recomputed hour replaces its old rows). The
-- outer bounds let the primary key skip every other hour.
SELECT Parent, Child, sum(CallCount), sum(ErrorCount)
FROM otel_service_dependencies_1h FINAL
WHERE TenantId = {tenant:String}
  AND TimeBucket >= toDateTime(arrayMin(r -> r.1, {runs:Array(Tuple(UInt32, UInt32))}))
  AND TimeBucket < toDateTime(arrayMax(r -> r.2, {runs:Array(Tuple(UInt32, UInt32))}))
  AND arrayExists(r -> TimeBucket >= toDateTime(r.1) AND TimeBucket < toDateTime(r.2), {runs:Array(Tuple(UInt32, UInt32))})
GROUP BY Parent, Child
ORDER BY Parent, Child
