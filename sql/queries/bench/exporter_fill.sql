-- otelingest bench ingest: the sampled spans as the Collector ClickHouse exporter stores them
-- (hex ids, empty parent id for roots, kind and status as "Server", "Unset"...).
INSERT INTO {db:Identifier}.exporter_traces
    (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
     ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
     `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
     `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
SELECT
    Timestamp, lower(hex(TraceId)), lower(hex(SpanId)),
    if(ParentSpanId = toFixedString(repeat('\0', 8), 8), '', lower(hex(ParentSpanId))),
    TraceState, SpanName, initcap(lower(toString(SpanKind))), ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    initcap(lower(toString(StatusCode))), StatusMessage,
    `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
    arrayMap(x -> lower(hex(x)), `Links.TraceId`), arrayMap(x -> lower(hex(x)), `Links.SpanId`),
    `Links.TraceState`, `Links.Attributes`
FROM {db:Identifier}.bench_traces_sample
