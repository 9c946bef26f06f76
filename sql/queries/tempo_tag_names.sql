-- Attribute names per TraceQL scope seen on spans in the window (Tempo /api/search/tags and
-- /api/v2/search/tags). %FILTER% is a span condition from tempo_fragments.sql ("1" without `q`).
-- Each scope's names are capped at {limit} by the caller's LIMIT BY.
SELECT scope, name
FROM
(
    SELECT
        arrayConcat(
            arrayMap(k -> ('span', k), mapKeys(SpanAttributes)),
            arrayMap(k -> ('resource', k), mapKeys(ResourceAttributes)),
            arrayMap(k -> ('event', k), arrayFlatten(arrayMap(m -> mapKeys(m), Events.Attributes))),
            arrayMap(k -> ('link', k), arrayFlatten(arrayMap(m -> mapKeys(m), Links.Attributes))),
            arrayMap(k -> ('instrumentation', k), mapKeys(ScopeAttributes))) AS pairs
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
      AND (%FILTER%)
)
ARRAY JOIN pairs AS pair
GROUP BY pair.1 AS scope, pair.2 AS name
ORDER BY scope, name
LIMIT {limit:UInt32} BY scope
