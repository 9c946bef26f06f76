-- Fragment (CTE `samples`), promql/pushdown/samples_raw.sql for series that only OTLP wrote (none
-- remote-written, so no otel_prom_samples rows and no stale markers): the same samples without the
-- narrow table's branch and the stale-marker test, which cost such a query 10-20% (docs/promql.md).
WITH samples AS
(
    SELECT sid, t,
           if({running:UInt8}, sum(x) OVER (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), x) AS v
    FROM
    (
        SELECT SeriesId AS sid, toUnixTimestamp64Nano(TimeUnix) AS t,
               multiIf({kind:String} = 'value', Value, {kind:String} = 'count', toFloat64(Count), ifNull(Sum, 0)) AS x
        FROM otel_metrics
        WHERE TenantId = {tenant:String}
          AND MetricName IN {names:Array(String)}
          AND SeriesId IN {series:Array(UInt64)}
          AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
          AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
    )
)
