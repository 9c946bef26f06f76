-- The whole hours in [from_s, to_s) that otel_service_dependencies_1h answers for the tenant, ascending:
-- hours computed at least final_after_s after they began (their spans had all arrived), and hours
-- older than every stored span (nothing else is left of them, so the rollup is the best answer).
SELECT hour
FROM
(
    SELECT toUnixTimestamp(TimeBucket) AS hour
    FROM otel_service_dependency_hours
    WHERE TenantId = {tenant:String}
      AND TimeBucket >= toDateTime({from_s:UInt32}) AND TimeBucket < toDateTime({to_s:UInt32})
    GROUP BY TimeBucket
    HAVING max(ComputedAt) >= TimeBucket + toIntervalSecond({final_after_s:UInt32})
    UNION DISTINCT
    SELECT arrayJoin(range({from_s:UInt32}, least({to_s:UInt32}, ifNull(
        -- The hour of the tenant's oldest stored span: its oldest hourly partition (the key finds the
        -- tenant's granules and only TenantId is read, where min(Timestamp) would read every span's).
        (SELECT intDiv(toUnixTimestamp(min(_partition_value.1)), 3600) * 3600 FROM otel_traces
         WHERE TenantId = {tenant:String} HAVING count() > 0),
        {to_s:UInt32})), 3600)) AS hour
)
ORDER BY hour
