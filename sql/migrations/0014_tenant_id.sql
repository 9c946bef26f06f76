-- otelingest schema, version 14: a tenant on every row (issue 19, docs/tenancy.md).
--
-- Every raw table, lookup and rollup gets `TenantId LowCardinality(String) DEFAULT 'default'` as the
-- first column of its sorting key, so one tenant's query reads only its granules. Rows written
-- before this version read 'default', the tenant of tenancy mode off. The receivers' Native blocks
-- carry the column (rust/src/tables/mod.rs); the materialized views copy it into every lookup and
-- rollup and group by it. Placeholders as in 0001_base.sql.
--
-- In three steps, each safe to run again (an interrupted migration is re-run from the top):
-- 1. the column, first, on every table (a metadata change: old parts compute the default on read);
-- 2. the views carry it;
-- 3. `-- @rekey <table>`: ClickHouse cannot put a new column at the front of an existing sorting
--    key, so the migration runner (python/otelingest/clickhouse/rekey.py) rebuilds each table as
--    `<table>_v2` ordered by (TenantId, <the old key>), copies it partition by partition
--    (restartable), exchanges the two and drops the old one. The writers keep inserting during the
--    copy; they are held only for each table's final pass and exchange (rekey.py). In cluster mode
--    the runner does not rebuild (the column is added, the key stays as it was: docs/tenancy.md).

-- 1. The column.
ALTER TABLE ${table:otel_traces} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_trace_times} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_trace_index} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_logs} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_metrics} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_service_dependencies_1h} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_service_dependency_hours} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_metrics_5m} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_metrics_1h} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_metrics_metadata} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_metrics_exemplars} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_prom_samples} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;
ALTER TABLE ${table:otel_prom_series} ${on_cluster}
    ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' CODEC(ZSTD(3)) FIRST;

-- In cluster mode the Distributed tables declare it too; on a single node these are the tables
-- above, already done.
ALTER TABLE ${db}.otel_traces ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_trace_times ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_trace_index ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_logs ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_metrics ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_span_stats_1h ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_service_dependencies_1h ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_service_dependency_hours ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_metrics_5m ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_metrics_1h ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_metrics_metadata ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_metrics_exemplars ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_prom_samples ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE ${db}.otel_prom_series ${on_cluster} ADD COLUMN IF NOT EXISTS TenantId LowCardinality(String) DEFAULT 'default' FIRST;

-- 2. The views carry it into every lookup and rollup, one row per tenant and key.
ALTER TABLE ${db}.otel_trace_times_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End
FROM ${table:otel_traces}
GROUP BY TenantId, TraceId;

ALTER TABLE ${db}.otel_trace_index_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId, Timestamp, ServiceName, SpanName, SpanKind, Duration, StatusCode,
    toUInt8(ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)) AS IsRoot,
    TraceId
FROM ${table:otel_traces};

ALTER TABLE ${db}.otel_span_stats_1h_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
    toStartOfHour(Timestamp) AS TimeBucket,
    ServiceName, SpanName, SpanKind,
    toUInt64(count()) AS SpanCount,
    toUInt64(countIf(StatusCode = 'ERROR')) AS ErrorCount,
    sum(Duration) AS DurationSum,
    min(Duration) AS DurationMin,
    max(Duration) AS DurationMax,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS DurationQuantiles
FROM ${table:otel_traces}
GROUP BY TenantId, TimeBucket, ServiceName, SpanName, SpanKind;

ALTER TABLE ${db}.otel_metrics_5m_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
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
GROUP BY TenantId, TimeBucket, MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId;

ALTER TABLE ${db}.otel_metrics_1h_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
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
GROUP BY TenantId, TimeBucket, MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId;

-- Remote-written samples: 0013's lean views, per tenant (a series id hashes the labels, not the
-- tenant, so they group by the tenant too).
ALTER TABLE ${db}.otel_prom_samples_5m_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
    toStartOfFiveMinutes(TimeUnix) AS TimeBucket,
    any(MetricName) AS MetricName,
    CAST('Gauge', 'Enum8(\'Gauge\' = 1, \'Sum\' = 2, \'Histogram\' = 3, \'ExponentialHistogram\' = 4, \'Summary\' = 5)') AS MetricType,
    CAST('Unspecified', 'Enum8(\'Unspecified\' = 0, \'Delta\' = 1, \'Cumulative\' = 2)') AS AggregationTemporality,
    false AS IsMonotonic,
    any(ServiceName) AS ServiceName,
    SeriesId,
    map('otelingest.source', 'prometheus.remote_write') AS ResourceAttributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMaxState(Value, TimeUnix) AS ValueLast
FROM ${table:otel_prom_samples}
GROUP BY TenantId, TimeBucket, SeriesId;

-- The inner SELECT filters by the stored columns (the outer one's aliases would shadow them).
ALTER TABLE ${db}.otel_prom_samples_1h_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
    toStartOfHour(TimeBucket) AS TimeBucket,
    any(MetricName) AS MetricName, any(MetricType) AS MetricType, any(AggregationTemporality) AS AggregationTemporality,
    any(IsMonotonic) AS IsMonotonic, any(ServiceName) AS ServiceName, SeriesId,
    any(ResourceAttributes) AS ResourceAttributes,
    sum(Points) AS Points,
    sum(ValueSum) AS ValueSum,
    min(ValueMin) AS ValueMin,
    max(ValueMax) AS ValueMax,
    argMaxMergeState(ValueLast) AS ValueLast
FROM
(
    SELECT *
    FROM ${table:otel_metrics_5m}
    WHERE MetricType = 'Gauge'
      AND ResourceAttributes = map('otelingest.source', 'prometheus.remote_write')
      AND empty(Attributes)
)
GROUP BY TenantId, TimeBucket, SeriesId;

-- 3. Every table ordered by (TenantId, <its key>).
-- @rekey otel_traces
-- @rekey otel_trace_times
-- @rekey otel_trace_index
-- @rekey otel_logs
-- @rekey otel_metrics
-- @rekey otel_span_stats_1h
-- @rekey otel_service_dependencies_1h
-- @rekey otel_service_dependency_hours
-- @rekey otel_metrics_5m
-- @rekey otel_metrics_1h
-- @rekey otel_metrics_metadata
-- @rekey otel_metrics_exemplars
-- @rekey otel_prom_samples
-- @rekey otel_prom_series
