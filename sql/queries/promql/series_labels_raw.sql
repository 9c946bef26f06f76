-- The label sources of the given series (raw points in a window that holds them). A SeriesId is a
-- hash of its metric, service and attribute maps, so its labels never change: the service keeps
-- them and asks only for series it has not seen. Remote-written series since migration 0012:
-- otel_prom_series, one row per series and day.
SELECT SeriesId, any(ServiceName), any(ResourceAttributes), any(Attributes)
FROM
(
    SELECT SeriesId, ServiceName, ResourceAttributes, Attributes
    FROM otel_metrics
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    UNION ALL
    SELECT SeriesId, ServiceName, ResourceAttributes, Attributes
    FROM otel_prom_series
    WHERE TenantId = {tenant:String}
      AND MetricName IN {names:Array(String)}
      AND SeriesId IN {series:Array(UInt64)}
      AND toDate(TimeUnix) >= toDate(fromUnixTimestamp64Nano({start_ns:Int64}))
      AND toDate(TimeUnix) <= toDate(fromUnixTimestamp64Nano({end_ns:Int64}))
)
GROUP BY SeriesId
