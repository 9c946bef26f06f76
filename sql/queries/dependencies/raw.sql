-- Service dependencies over raw spans: each child span that started in [start, end) joined to its
-- parent span (same trace), counted when the two services differ. A call belongs to the hour its
-- child started and counts when the parent started in that hour or the one before: the rule
-- rollup.sql applies to each hour, so a window's answer does not depend on which of
-- its hours come from otel_service_dependencies_1h.
WITH 3600000000000 AS hour_ns
SELECT p.ServiceName AS parent, c.ServiceName AS child, count() AS calls, countIf(c.StatusCode = 'ERROR') AS errors
FROM
(
    SELECT TraceId, ParentSpanId, ServiceName, StatusCode, intDiv(toUnixTimestamp(Timestamp), 3600) AS Hour
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
      AND ParentSpanId != toFixedString('\0\0\0\0\0\0\0\0', 8)
) AS c
INNER JOIN
(
    SELECT TraceId, SpanId, ServiceName, intDiv(toUnixTimestamp(Timestamp), 3600) AS Hour
    FROM otel_traces
    -- From the hour before the first child's hour to the end of the last child's hour.
    WHERE TenantId = {tenant:String}
      AND Timestamp >= fromUnixTimestamp64Nano(intDiv({start_ns:Int64}, hour_ns) * hour_ns - hour_ns)
      AND Timestamp < fromUnixTimestamp64Nano(intDiv({end_ns:Int64} + hour_ns - 1, hour_ns) * hour_ns)
) AS p
ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE p.ServiceName != c.ServiceName AND p.Hour + 1 >= c.Hour AND p.Hour <= c.Hour
GROUP BY parent, child
ORDER BY parent, child
