-- Fragment (CTE `samples`) for promql/pushdown/ordered.sql, promql/pushdown/pairs.sql, promql/pushdown/latest.sql or
-- promql/pushdown/over_time.sql: the exposed samples (sid, t, v) of the selected series in (start, end] from
-- raw points, for a gauge/counter value or a histogram's Count or Sum ({kind:String} = value |
-- count | sum). Delta points become a running total from the window's start, as the Python
-- evaluator does. Stale markers (a NaN with payload 2, sent by Prometheus when a series stops)
-- are left out.
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
          -- Prometheus stale markers (remote write) are not samples of any window.
          AND reinterpretAsUInt64(Value) != 9218868437227405314
        UNION ALL
        -- Remote-written samples since migration 0012 (gauges: Count and Sum are 0).
        SELECT SeriesId, toUnixTimestamp64Nano(TimeUnix), if({kind:String} = 'value', Value, 0)
        FROM otel_prom_samples
        WHERE TenantId = {tenant:String}
          AND MetricName IN {names:Array(String)}
          AND SeriesId IN {series:Array(UInt64)}
          AND TimeUnix > fromUnixTimestamp64Nano({start_ns:Int64})
          AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
          AND reinterpretAsUInt64(Value) != 9218868437227405314
    )
)
