-- otelingest schema, version 2: one-year rollups and full-text search on log bodies.
-- Placeholders as in 0001_base.sql.

-- Full-text search on log bodies (token bloom filter), added to an existing table.
ALTER TABLE ${table:otel_logs} ${on_cluster}
    ADD INDEX IF NOT EXISTS idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1;

ALTER TABLE ${table:otel_logs} ${on_cluster} MATERIALIZE INDEX idx_body
SETTINGS mutations_sync = 0;

-- Per service, operation and kind per hour: span count, errors, duration min/max/sum and
-- mergeable quantile states. Long-range trace statistics read this, never raw spans.
CREATE TABLE IF NOT EXISTS ${table:otel_span_stats_1h} ${on_cluster}
(
    TimeBucket        DateTime CODEC(DoubleDelta, ZSTD(3)),
    ServiceName       LowCardinality(String),
    SpanName          LowCardinality(String),
    SpanKind          Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5),
    SpanCount         SimpleAggregateFunction(sum, UInt64),
    ErrorCount        SimpleAggregateFunction(sum, UInt64),
    DurationSum       SimpleAggregateFunction(sum, UInt64),
    DurationMin       SimpleAggregateFunction(min, UInt64),
    DurationMax       SimpleAggregateFunction(max, UInt64),
    DurationQuantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64)
)
ENGINE = ${engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(TimeBucket)
ORDER BY (ServiceName, SpanName, SpanKind, TimeBucket)
TTL TimeBucket + toIntervalDay(${ttl:span_stats})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_span_stats_1h cityHash64(ServiceName)

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_span_stats_1h_mv ${on_cluster}
TO ${table:otel_span_stats_1h}
AS SELECT
    toStartOfHour(Timestamp) AS TimeBucket,
    ServiceName, SpanName, SpanKind,
    toUInt64(count()) AS SpanCount,
    toUInt64(countIf(StatusCode = 'ERROR')) AS ErrorCount,
    sum(Duration) AS DurationSum,
    min(Duration) AS DurationMin,
    max(Duration) AS DurationMax,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS DurationQuantiles
FROM ${table:otel_traces}
GROUP BY TimeBucket, ServiceName, SpanName, SpanKind;

-- Parent service -> child service calls per hour. A parent and its child usually arrive in
-- different inserts, so a materialized view cannot join them; the writer's dependency job fills
-- this from closed hours (sql/queries/dependencies_rollup.sql).
CREATE TABLE IF NOT EXISTS ${table:otel_service_dependencies_1h} ${on_cluster}
(
    TimeBucket    DateTime CODEC(DoubleDelta, ZSTD(3)),
    Parent        LowCardinality(String),
    Child         LowCardinality(String),
    CallCount     UInt64,
    ErrorCount    UInt64
)
ENGINE = ${engine:ReplacingMergeTree}
PARTITION BY toYYYYMM(TimeBucket)
ORDER BY (TimeBucket, Parent, Child)
TTL TimeBucket + toIntervalDay(${ttl:dependencies})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_service_dependencies_1h cityHash64(Parent, Child)

-- Metric rollups. One row per series per bucket; what each metric type needs:
--   gauges: point count, sum/min/max, first/last value, value quantile states;
--   sums: first/last value (cumulative -> increase), ValueSum (delta -> increase);
--   histograms: last Count/Sum/BucketCounts (cumulative), summed ones (delta), bounds.
CREATE TABLE IF NOT EXISTS ${table:otel_metrics_5m} ${on_cluster}
(
    TimeBucket             DateTime CODEC(DoubleDelta, ZSTD(3)),
    MetricName             LowCardinality(String),
    MetricType             Enum8('Gauge' = 1, 'Sum' = 2, 'Histogram' = 3, 'ExponentialHistogram' = 4, 'Summary' = 5),
    AggregationTemporality Enum8('Unspecified' = 0, 'Delta' = 1, 'Cumulative' = 2),
    IsMonotonic            Bool,
    ServiceName            LowCardinality(String),
    SeriesId               UInt64,
    MetricUnit             SimpleAggregateFunction(anyLast, String),
    ResourceAttributes     SimpleAggregateFunction(anyLast, Map(String, String)) CODEC(ZSTD(3)),
    Attributes             SimpleAggregateFunction(anyLast, Map(String, String)) CODEC(ZSTD(3)),
    Points                 SimpleAggregateFunction(sum, UInt64),
    ValueSum               SimpleAggregateFunction(sum, Float64),
    ValueMin               SimpleAggregateFunction(min, Float64),
    ValueMax               SimpleAggregateFunction(max, Float64),
    ValueFirst             AggregateFunction(argMin, Float64, DateTime64(9)),
    ValueLast              AggregateFunction(argMax, Float64, DateTime64(9)),
    ValueQuantiles         AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    CountSum               SimpleAggregateFunction(sum, UInt64),
    SumSum                 SimpleAggregateFunction(sum, Float64),
    CountLast              AggregateFunction(argMax, UInt64, DateTime64(9)),
    SumLast                AggregateFunction(argMax, Float64, DateTime64(9)),
    ExplicitBounds         SimpleAggregateFunction(anyLast, Array(Float64)),
    BucketCountsSum        AggregateFunction(sumForEach, Array(UInt64)),
    BucketCountsLast       AggregateFunction(argMax, Array(UInt64), DateTime64(9))
)
ENGINE = ${engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(TimeBucket)
ORDER BY (MetricName, ServiceName, SeriesId, MetricType, AggregationTemporality, IsMonotonic, TimeBucket)
TTL TimeBucket + toIntervalDay(${ttl:metrics_5m})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_metrics_5m cityHash64(MetricName, ServiceName)

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_metrics_5m_mv ${on_cluster}
TO ${table:otel_metrics_5m}
AS SELECT
    toStartOfFiveMinutes(TimeUnix) AS TimeBucket,
    MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId,
    anyLast(MetricUnit) AS MetricUnit,
    anyLast(ResourceAttributes) AS ResourceAttributes,
    anyLast(Attributes) AS Attributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMinState(Value, TimeUnix) AS ValueFirst,
    argMaxState(Value, TimeUnix) AS ValueLast,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(Value) AS ValueQuantiles,
    sum(Count) AS CountSum,
    sum(ifNull(Sum, 0)) AS SumSum,
    argMaxState(Count, TimeUnix) AS CountLast,
    argMaxState(ifNull(Sum, 0), TimeUnix) AS SumLast,
    anyLast(ExplicitBounds) AS ExplicitBounds,
    sumForEachState(BucketCounts) AS BucketCountsSum,
    argMaxState(BucketCounts, TimeUnix) AS BucketCountsLast
FROM ${table:otel_metrics}
GROUP BY TimeBucket, MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId;

CREATE TABLE IF NOT EXISTS ${table:otel_metrics_1h} ${on_cluster}
AS ${table:otel_metrics_5m}
ENGINE = ${engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(TimeBucket)
ORDER BY (MetricName, ServiceName, SeriesId, MetricType, AggregationTemporality, IsMonotonic, TimeBucket)
TTL TimeBucket + toIntervalDay(${ttl:metrics_1h})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_metrics_1h cityHash64(MetricName, ServiceName)

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_metrics_1h_mv ${on_cluster}
TO ${table:otel_metrics_1h}
AS SELECT
    toStartOfHour(TimeUnix) AS TimeBucket,
    MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId,
    anyLast(MetricUnit) AS MetricUnit,
    anyLast(ResourceAttributes) AS ResourceAttributes,
    anyLast(Attributes) AS Attributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMinState(Value, TimeUnix) AS ValueFirst,
    argMaxState(Value, TimeUnix) AS ValueLast,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(Value) AS ValueQuantiles,
    sum(Count) AS CountSum,
    sum(ifNull(Sum, 0)) AS SumSum,
    argMaxState(Count, TimeUnix) AS CountLast,
    argMaxState(ifNull(Sum, 0), TimeUnix) AS SumLast,
    anyLast(ExplicitBounds) AS ExplicitBounds,
    sumForEachState(BucketCounts) AS BucketCountsSum,
    argMaxState(BucketCounts, TimeUnix) AS BucketCountsLast
FROM ${table:otel_metrics}
GROUP BY TimeBucket, MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId;
