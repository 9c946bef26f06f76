-- TraceQL search, step one: traces in the window having spans that can satisfy the query, newest
-- first. %COLUMNS% holds one column c<i> per spanset filter of the query (fragments of
-- tempo_fragments.sql); %ANY% keeps spans matching any of them, %HAVING% is the query's spanset
-- expression over "some span matches c<i>" (structural operators relaxed to "both sides match",
-- trace-level intrinsics to true): a necessary condition, exact for plain filters. Step two
-- (tempo_search_spans.sql) decides.
SELECT hex(TraceId) AS trace_id, max(ts) AS last_seen
FROM
(
    SELECT TraceId, Timestamp AS ts, %COLUMNS%
    FROM otel_traces
    WHERE TenantId = {tenant:String}
      AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
      AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
)
WHERE %ANY%
GROUP BY TraceId
HAVING %HAVING%
ORDER BY last_seen DESC
LIMIT {limit:UInt32}
