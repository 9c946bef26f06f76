-- otelingest schema, version 1: raw signal tables and the trace-id lookup.
--
-- Template placeholders (rendered by otelingest.schema, values validated before rendering):
--   ${db}            database name
--   ${on_cluster}    empty, or ON CLUSTER '<name>' in cluster mode
--   ${table:NAME}    db.NAME, or db.NAME_local in cluster mode (the storage table)
--   ${engine:KIND}   KIND, or ReplicatedKIND('/clickhouse/tables/{shard}/<db>/<table>', '{replica}')
--   ${ttl:KEY}       retention in days for KEY, from [retention] in the config
-- A line `-- @distributed NAME SHARDING_KEY` adds, in cluster mode only, a Distributed table NAME
-- over NAME_local. Statements end with a semicolon at the end of a line.
--
-- Conventions: ids are raw bytes (FixedString 16/8, all zero when absent) because hex doubles them;
-- timestamps are DateTime64(9) nanoseconds; attribute maps hold every AnyValue rendered as text
-- (see README "Attribute values"); insert deduplication windows make a replayed batch (same
-- insert_deduplication_token) invisible, so a retry after a crash never doubles rows.

-- Spans. Ordered by TraceId so a trace read is one granule range per part; hourly partitions let
-- the window from otel_trace_times prune everything else. Searches go through otel_trace_index.
CREATE TABLE IF NOT EXISTS ${table:otel_traces} ${on_cluster}
(
    Timestamp              DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    TraceId                FixedString(16) CODEC(ZSTD(3)),
    SpanId                 FixedString(8) CODEC(ZSTD(3)),
    ParentSpanId           FixedString(8) CODEC(ZSTD(3)),
    TraceState             String CODEC(ZSTD(3)),
    Flags                  UInt32 CODEC(T64, ZSTD(3)),
    SpanName               LowCardinality(String) CODEC(ZSTD(3)),
    SpanKind               Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5),
    ServiceName            LowCardinality(String) CODEC(ZSTD(3)),
    ResourceAttributes     Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ResourceSchemaUrl      LowCardinality(String) CODEC(ZSTD(3)),
    ScopeName              LowCardinality(String) CODEC(ZSTD(3)),
    ScopeVersion           LowCardinality(String) CODEC(ZSTD(3)),
    ScopeAttributes        Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ScopeSchemaUrl         LowCardinality(String) CODEC(ZSTD(3)),
    SpanAttributes         Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    Duration               UInt64 CODEC(T64, ZSTD(3)),
    StatusCode             Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2),
    StatusMessage          String CODEC(ZSTD(3)),
    DroppedAttributesCount UInt32 CODEC(T64, ZSTD(3)),
    DroppedEventsCount     UInt32 CODEC(T64, ZSTD(3)),
    DroppedLinksCount      UInt32 CODEC(T64, ZSTD(3)),
    Events Nested
    (
        Timestamp              DateTime64(9),
        Name                   LowCardinality(String),
        Attributes             Map(LowCardinality(String), String),
        DroppedAttributesCount UInt32
    ) CODEC(ZSTD(3)),
    Links Nested
    (
        TraceId                FixedString(16),
        SpanId                 FixedString(8),
        TraceState             String,
        Attributes             Map(LowCardinality(String), String),
        Flags                  UInt32,
        DroppedAttributesCount UInt32
    ) CODEC(ZSTD(3))
)
ENGINE = ${engine:MergeTree}
PARTITION BY toStartOfHour(Timestamp)
ORDER BY (TraceId, Timestamp)
TTL toDateTime(Timestamp) + toIntervalDay(${ttl:traces})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
-- @distributed otel_traces cityHash64(TraceId)

-- Trace id -> time window, so a read by id touches only the partitions the trace lives in.
CREATE TABLE IF NOT EXISTS ${table:otel_trace_times} ${on_cluster}
(
    TraceId FixedString(16) CODEC(ZSTD(3)),
    Start   SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(3)),
    End     SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(3))
)
ENGINE = ${engine:AggregatingMergeTree}
PARTITION BY toDate(Start)
ORDER BY TraceId
TTL toDateTime(Start) + toIntervalDay(${ttl:traces})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_trace_times cityHash64(TraceId)

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_trace_times_mv ${on_cluster}
TO ${table:otel_trace_times}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End
FROM ${table:otel_traces}
GROUP BY TraceId;

-- Search index: one row per span with what searches filter on, ordered for
-- service -> operation -> time scans; answers trace ids and their windows without reading spans.
CREATE TABLE IF NOT EXISTS ${table:otel_trace_index} ${on_cluster}
(
    Timestamp    DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    ServiceName  LowCardinality(String) CODEC(ZSTD(3)),
    SpanName     LowCardinality(String) CODEC(ZSTD(3)),
    SpanKind     Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5),
    Duration     UInt64 CODEC(T64, ZSTD(3)),
    StatusCode   Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2),
    IsRoot       UInt8,
    TraceId      FixedString(16) CODEC(ZSTD(3)),
    SpanId       FixedString(8) CODEC(ZSTD(3)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toStartOfMinute(Timestamp), Timestamp)
TTL toDateTime(Timestamp) + toIntervalDay(${ttl:traces})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_trace_index cityHash64(TraceId)

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_trace_index_mv ${on_cluster}
TO ${table:otel_trace_index}
AS SELECT
    Timestamp, ServiceName, SpanName, SpanKind, Duration, StatusCode,
    toUInt8(ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)) AS IsRoot,
    TraceId, SpanId
FROM ${table:otel_traces};

-- Log records. Ordered by service then time: queries filter a service and read newest first.
CREATE TABLE IF NOT EXISTS ${table:otel_logs} ${on_cluster}
(
    Timestamp              DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    ObservedTimestamp      DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    TraceId                FixedString(16) CODEC(ZSTD(3)),
    SpanId                 FixedString(8) CODEC(ZSTD(3)),
    TraceFlags             UInt32 CODEC(T64, ZSTD(3)),
    SeverityText           LowCardinality(String) CODEC(ZSTD(3)),
    SeverityNumber         UInt8,
    ServiceName            LowCardinality(String) CODEC(ZSTD(3)),
    Body                   String CODEC(ZSTD(3)),
    EventName              LowCardinality(String) CODEC(ZSTD(3)),
    ResourceAttributes     Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ResourceSchemaUrl      LowCardinality(String) CODEC(ZSTD(3)),
    ScopeName              LowCardinality(String) CODEC(ZSTD(3)),
    ScopeVersion           LowCardinality(String) CODEC(ZSTD(3)),
    ScopeAttributes        Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ScopeSchemaUrl         LowCardinality(String) CODEC(ZSTD(3)),
    LogAttributes          Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    DroppedAttributesCount UInt32 CODEC(T64, ZSTD(3)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_service ServiceName TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, Timestamp)
TTL toDateTime(Timestamp) + toIntervalDay(${ttl:logs})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
-- @distributed otel_logs rand()

-- Metric data points of all five OTLP types in one table; columns a type does not use stay at their
-- defaults. SeriesId identifies a time series (name, service, resource and point attributes,
-- independent of attribute order) so rollups and PromQL group without hashing maps at query time.
CREATE TABLE IF NOT EXISTS ${table:otel_metrics} ${on_cluster}
(
    TimeUnix                DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    StartTimeUnix           DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    MetricName              LowCardinality(String) CODEC(ZSTD(3)),
    MetricDescription       LowCardinality(String) CODEC(ZSTD(3)),
    MetricUnit              LowCardinality(String) CODEC(ZSTD(3)),
    MetricType              Enum8('Gauge' = 1, 'Sum' = 2, 'Histogram' = 3, 'ExponentialHistogram' = 4, 'Summary' = 5),
    AggregationTemporality  Enum8('Unspecified' = 0, 'Delta' = 1, 'Cumulative' = 2),
    IsMonotonic             Bool,
    ServiceName             LowCardinality(String) CODEC(ZSTD(3)),
    ResourceAttributes      Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ResourceSchemaUrl       LowCardinality(String) CODEC(ZSTD(3)),
    ScopeName               LowCardinality(String) CODEC(ZSTD(3)),
    ScopeVersion            LowCardinality(String) CODEC(ZSTD(3)),
    ScopeAttributes         Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ScopeSchemaUrl          LowCardinality(String) CODEC(ZSTD(3)),
    Attributes              Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    SeriesId                UInt64 MATERIALIZED cityHash64(MetricName, ServiceName, mapSort(ResourceAttributes), mapSort(Attributes)),
    Flags                   UInt32 CODEC(T64, ZSTD(3)),
    -- Gauge and Sum: the point's value (int points converted to Float64; ValueInt keeps them exact).
    Value                   Float64 CODEC(Gorilla, ZSTD(3)),
    ValueInt                Nullable(Int64) CODEC(ZSTD(3)),
    -- Histogram, ExponentialHistogram, Summary.
    Count                   UInt64 CODEC(T64, ZSTD(3)),
    Sum                     Nullable(Float64) CODEC(ZSTD(3)),
    Min                     Nullable(Float64) CODEC(ZSTD(3)),
    Max                     Nullable(Float64) CODEC(ZSTD(3)),
    BucketCounts            Array(UInt64) CODEC(ZSTD(3)),
    ExplicitBounds          Array(Float64) CODEC(ZSTD(3)),
    Scale                   Int32 CODEC(ZSTD(3)),
    ZeroCount               UInt64 CODEC(ZSTD(3)),
    ZeroThreshold           Float64 CODEC(ZSTD(3)),
    PositiveOffset          Int32 CODEC(ZSTD(3)),
    PositiveBucketCounts    Array(UInt64) CODEC(ZSTD(3)),
    NegativeOffset          Int32 CODEC(ZSTD(3)),
    NegativeBucketCounts    Array(UInt64) CODEC(ZSTD(3)),
    QuantileValues Nested
    (
        Quantile Float64,
        Value    Float64
    ) CODEC(ZSTD(3)),
    Exemplars Nested
    (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix           DateTime64(9),
        Value              Float64,
        SpanId             FixedString(8),
        TraceId            FixedString(16)
    ) CODEC(ZSTD(3))
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(TimeUnix)
ORDER BY (MetricName, ServiceName, SeriesId, TimeUnix)
TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
-- @distributed otel_metrics cityHash64(MetricName, ServiceName)
