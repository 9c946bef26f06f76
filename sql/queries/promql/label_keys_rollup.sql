-- promql/label_keys_raw.sql from a rollup table ({table}); the labels of series rolled up from
-- remote-written samples since migration 0012 are in otel_prom_series.
SELECT groupUniqArrayArray(keys), max(instance)
FROM
(
    SELECT groupUniqArrayArray(mapKeys(Attributes)) AS keys,
           max(has(mapKeys(ResourceAttributes), 'service.instance.id')) AS instance
    FROM {table:Identifier}
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
    UNION ALL
    SELECT groupUniqArrayArray(mapKeys(Attributes)), max(has(mapKeys(ResourceAttributes), 'service.instance.id'))
    FROM otel_prom_series
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN
      (
          SELECT SeriesId
          FROM {table:Identifier}
          WHERE TenantId = {tenant:String}
            AND MetricName IN {names:Array(String)}
            AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
            AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
      )
      AND toDate(TimeUnix) >= toDate(toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR)
      AND toDate(TimeUnix) <= toDate(toDateTime(intDiv({end_ns:Int64}, 1000000000)))
)
