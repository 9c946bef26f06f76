-- Service dependencies at query time: each child span joined to its parent span (same trace) over
-- raw spans in the window, counted when the two services differ. For recent windows; older
-- windows read otel_service_dependencies_1h (dependencies_rollup.sql fills it).
SELECT p.ServiceName AS parent, c.ServiceName AS child, count() AS calls, countIf(c.StatusCode = 'ERROR') AS errors
FROM
(
    SELECT TraceId, ParentSpanId, ServiceName, StatusCode
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
      AND ParentSpanId != toFixedString('\0\0\0\0\0\0\0\0', 8)
) AS c
INNER JOIN
(
    SELECT TraceId, SpanId, ServiceName
    FROM otel_traces
    -- A parent starts before its child: look one hour further back for it.
    WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) - INTERVAL 1 HOUR
      AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
) AS p
ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE p.ServiceName != c.ServiceName
GROUP BY parent, child
ORDER BY parent, child
