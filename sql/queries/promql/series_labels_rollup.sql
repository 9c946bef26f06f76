-- promql/series_labels_raw.sql from a rollup table ({table}). Rows rolled up from remote-written
-- samples since migration 0012, and from OTLP points since 0015, carry no labels (a marker as
-- resource): those come from otel_prom_series, and the longest maps of a series are its labels
-- (every row of a series holds its full labels or, from the narrow rollups, a subset of them).
-- OTLP rows since 0015 are left out (their marker is no label): a series whose otel_prom_series
-- row is not visible yet is not answered, rather than answered without its labels.
SELECT SeriesId, any(ServiceName), argMax(ResourceAttributes, length(ResourceAttributes)),
       argMax(Attributes, length(Attributes))
FROM
(
    SELECT SeriesId, ServiceName, ResourceAttributes, Attributes
    FROM {table:Identifier}
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeBucket >= toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR
      AND TimeBucket <= toDateTime(intDiv({end_ns:Int64}, 1000000000))
      AND NOT mapContains(ResourceAttributes, 'otelingest.labels')
    UNION ALL
    SELECT SeriesId, ServiceName, CAST(ResourceAttributes, 'Map(String, String)'), CAST(Attributes, 'Map(String, String)')
    FROM otel_prom_series
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND toDate(TimeUnix) >= toDate(toDateTime(intDiv({start_ns:Int64}, 1000000000)) - INTERVAL 1 HOUR)
      AND toDate(TimeUnix) <= toDate(toDateTime(intDiv({end_ns:Int64}, 1000000000)))
)
GROUP BY SeriesId
