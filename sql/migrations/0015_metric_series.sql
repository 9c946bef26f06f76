-- otelingest schema, version 15: the OTLP metric rollups without the series' labels (issue 20).
--
-- The two views of otel_metrics copied each point's resource and point attribute maps into every
-- 5-minute and hourly row (anyLast of both): about two thirds of ClickHouse's CPU for a metric
-- point (docs/benchmarks.md, "Metric points: rollups without maps"). A series' maps are the same
-- for all its points (SeriesId hashes them), so they are kept once per series and UTC day in
-- otel_prom_series (the table remote write already keeps its series' labels in, since 0012; kept
-- as long as the longest metric retention), written by a third view, and the rollup rows carry only
-- the marker below. The queries read a rollup series' labels from otel_prom_series
-- (promql/series_labels_rollup.sql, label_keys_rollup.sql, labels_rollup.sql) and skip the marker
-- rows' empty maps, so a series whose otel_prom_series row is not visible yet (another part of the
-- same INSERT) is left out for that moment rather than answered without labels.
--
-- Rollup rows written before stay as they are (their maps are read as before). The writers' blocks
-- do not change. Placeholders as in 0001_base.sql.
-- @writers-unchanged

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_metrics_series_mv ${on_cluster}
TO ${table:otel_prom_series}
AS SELECT TenantId, TimeUnix, MetricName, ServiceName, SeriesId, ResourceAttributes, Attributes
FROM ${table:otel_metrics};

ALTER TABLE ${db}.otel_metrics_5m_mv ${on_cluster} MODIFY QUERY
SELECT
    TenantId,
    toStartOfFiveMinutes(TimeUnix) AS TimeBucket,
    MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId,
    anyLast(MetricUnit) AS MetricUnit,
    map('otelingest.labels', 'otel_prom_series') AS ResourceAttributes,
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
    map('otelingest.labels', 'otel_prom_series') AS ResourceAttributes,
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
