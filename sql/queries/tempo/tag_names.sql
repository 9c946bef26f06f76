-- Attribute names per TraceQL scope seen on spans in the window (Tempo /api/search/tags and
-- /api/v2/search/tags). %FILTER% is a span condition from tempo_fragments.sql ("1" without `q`);
-- {scope} '' reads every scope, else only that one (the other parts are constant-false). A
-- DISTINCT per scope over the maps' key subcolumns: 0.07 s for an hour of the bench's 10M spans
-- where one pass building (scope, name) pairs per span took 0.16 s. Each scope's names are capped
-- at {limit}.
SELECT scope, name
FROM
(
    SELECT DISTINCT 'span' AS scope, arrayJoin(SpanAttributes.keys) AS name
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND {scope:String} IN ('', 'span')
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
    UNION ALL
    SELECT DISTINCT 'resource', arrayJoin(ResourceAttributes.keys)
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND {scope:String} IN ('', 'resource')
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
    UNION ALL
    SELECT DISTINCT 'event', arrayJoin(arrayFlatten(arrayMap(m -> mapKeys(m), Events.Attributes)))
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND {scope:String} IN ('', 'event')
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
    UNION ALL
    SELECT DISTINCT 'link', arrayJoin(arrayFlatten(arrayMap(m -> mapKeys(m), Links.Attributes)))
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND {scope:String} IN ('', 'link')
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
    UNION ALL
    SELECT DISTINCT 'instrumentation', arrayJoin(ScopeAttributes.keys)
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND {scope:String} IN ('', 'instrumentation')
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
)
GROUP BY scope, name
ORDER BY scope, name
LIMIT {limit:UInt32} BY scope
