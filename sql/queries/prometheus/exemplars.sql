-- Exemplars (metric -> trace links) of the selected series in a window, oldest first.
SELECT SeriesId, toUnixTimestamp64Nano(e.1), e.2, hex(e.3), hex(e.4), e.5, ExplicitBounds
FROM otel_metrics
ARRAY JOIN arrayZip(Exemplars.TimeUnix, Exemplars.Value, Exemplars.TraceId, Exemplars.SpanId,
                    Exemplars.FilteredAttributes) AS e
WHERE TenantId = {tenant:String}
  AND MetricName IN {names:Array(String)}
  AND SeriesId IN {series:Array(UInt64)}
  AND TimeUnix >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND TimeUnix <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND e.1 >= fromUnixTimestamp64Nano({start_ns:Int64})
  AND e.1 <= fromUnixTimestamp64Nano({end_ns:Int64})
ORDER BY SeriesId, e.1
LIMIT {limit:UInt32}
