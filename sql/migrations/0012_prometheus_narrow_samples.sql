-- otelingest schema, version 12: a narrow layout for Prometheus remote-write samples.
--
-- Until now a remote-written sample was a whole otel_metrics row (40 columns, the labels as maps on
-- every row, the SeriesId hash and both rollup views copying the maps per row). Now a sample is a
-- (MetricName, ServiceName, SeriesId, TimeUnix, Value) row and the labels are written once per
-- series and day (rust/src/prom/remote_write.rs). SeriesId is the otel_metrics formula computed in
-- Rust, so rows written before this migration stay where they are and the query side reads both
-- tables (sql/queries/promql/*_raw.sql): nothing is copied, so nothing is lost or doubled.
-- Placeholders as in 0001_base.sql.

CREATE TABLE IF NOT EXISTS ${table:otel_prom_samples} ${on_cluster}
(
    MetricName  LowCardinality(String) CODEC(ZSTD(3)),
    ServiceName LowCardinality(String) CODEC(ZSTD(3)),
    SeriesId    UInt64 CODEC(ZSTD(3)),
    TimeUnix    DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    Value       Float64 CODEC(Gorilla, ZSTD(3))
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(TimeUnix)
ORDER BY (MetricName, ServiceName, SeriesId, TimeUnix)
TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
-- @distributed otel_prom_samples cityHash64(MetricName, ServiceName)

-- The labels of each series, at least once per day it has samples (TimeUnix is the first sample
-- of that day a receiver wrote it with). Every row of a series is the same, so merges keep one per
-- day; readers take any().
CREATE TABLE IF NOT EXISTS ${table:otel_prom_series} ${on_cluster}
(
    TimeUnix           DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    MetricName         LowCardinality(String) CODEC(ZSTD(3)),
    ServiceName        LowCardinality(String) CODEC(ZSTD(3)),
    SeriesId           UInt64 CODEC(ZSTD(3)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    Attributes         Map(LowCardinality(String), String) CODEC(ZSTD(3))
)
ENGINE = ${engine:ReplacingMergeTree}
PARTITION BY toDate(TimeUnix)
ORDER BY (MetricName, ServiceName, SeriesId)
TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics})
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
-- @distributed otel_prom_series cityHash64(MetricName, ServiceName)

-- Rollups from the narrow rows, into the same tables as otel_metrics' views (same series ids), as
-- a Gauge without maps: the labels of a rollup's series come from otel_prom_series
-- (promql/series_labels_rollup.sql). The resource keeps only the remote-write marker, a constant,
-- so promql/catalog_rollup.sql still tells these series apart.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_5m_mv ${on_cluster}
TO ${table:otel_metrics_5m}
AS SELECT
    toStartOfFiveMinutes(TimeUnix) AS TimeBucket,
    MetricName, CAST('Gauge', 'Enum8(\'Gauge\' = 1, \'Sum\' = 2, \'Histogram\' = 3, \'ExponentialHistogram\' = 4, \'Summary\' = 5)') AS MetricType,
    CAST('Unspecified', 'Enum8(\'Unspecified\' = 0, \'Delta\' = 1, \'Cumulative\' = 2)') AS AggregationTemporality,
    false AS IsMonotonic, ServiceName, SeriesId,
    '' AS MetricUnit,
    map('otelingest.source', 'prometheus.remote_write') AS ResourceAttributes,
    CAST(map(), 'Map(String, String)') AS Attributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMinState(Value, TimeUnix) AS ValueFirst,
    argMaxState(Value, TimeUnix) AS ValueLast,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(Value) AS ValueQuantiles,
    toUInt64(0) AS CountSum,
    toFloat64(0) AS SumSum,
    argMaxState(toUInt64(0), TimeUnix) AS CountLast,
    argMaxState(toFloat64(0), TimeUnix) AS SumLast,
    CAST([], 'Array(Float64)') AS ExplicitBounds,
    sumForEachState(CAST([], 'Array(UInt64)')) AS BucketCountsSum,
    argMaxState(CAST([], 'Array(UInt64)'), TimeUnix) AS BucketCountsLast
FROM ${table:otel_prom_samples}
GROUP BY TimeBucket, MetricName, ServiceName, SeriesId;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_1h_mv ${on_cluster}
TO ${table:otel_metrics_1h}
AS SELECT
    toStartOfHour(TimeUnix) AS TimeBucket,
    MetricName, CAST('Gauge', 'Enum8(\'Gauge\' = 1, \'Sum\' = 2, \'Histogram\' = 3, \'ExponentialHistogram\' = 4, \'Summary\' = 5)') AS MetricType,
    CAST('Unspecified', 'Enum8(\'Unspecified\' = 0, \'Delta\' = 1, \'Cumulative\' = 2)') AS AggregationTemporality,
    false AS IsMonotonic, ServiceName, SeriesId,
    '' AS MetricUnit,
    map('otelingest.source', 'prometheus.remote_write') AS ResourceAttributes,
    CAST(map(), 'Map(String, String)') AS Attributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMinState(Value, TimeUnix) AS ValueFirst,
    argMaxState(Value, TimeUnix) AS ValueLast,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(Value) AS ValueQuantiles,
    toUInt64(0) AS CountSum,
    toFloat64(0) AS SumSum,
    argMaxState(toUInt64(0), TimeUnix) AS CountLast,
    argMaxState(toFloat64(0), TimeUnix) AS SumLast,
    CAST([], 'Array(Float64)') AS ExplicitBounds,
    sumForEachState(CAST([], 'Array(UInt64)')) AS BucketCountsSum,
    argMaxState(CAST([], 'Array(UInt64)'), TimeUnix) AS BucketCountsLast
FROM ${table:otel_prom_samples}
GROUP BY TimeBucket, MetricName, ServiceName, SeriesId;
