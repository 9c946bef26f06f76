-- otelingest schema, version 13: cheaper rollups of remote-written samples (issue 17).
--
-- 0012's two views computed every rollup state from every narrow row, t-digest and histogram
-- states included, and the hourly one again from the raw rows: about three quarters of
-- ClickHouse's insert work (docs/benchmarks.md "Remote write: lean rollups"). Now:
--   * the 5-minute view keeps what is read of a remote-written (gauge) series: the last value
--     (PromQL), Points and ValueSum/Min/Max (the design's metric API). The first value (read only
--     for OTLP sums), the t-digest and the Count/Sum/bucket states are left empty (their
--     defaults): t-digest quantiles of these series over rollup windows are not kept
--     (docs/promql.md "Throughput");
--   * it groups by (bucket, SeriesId) alone, a fixed-size key: the series id already hashes the
--     metric and service names, so any() of those is the value;
--   * the hourly view is fed from the 5-minute rows (a view on the 5-minute table), not from raw
--     rows, and takes only the rows the 5-minute view above writes (its constant resource marker
--     and empty attributes; rows of otel_metrics' own view carry attributes or other resource keys).
-- Rollup rows already written stay as they are (same tables, same columns; a bucket holding rows
-- of both versions merges them); the migration runs before any writer inserts, so no sample is
-- rolled up twice or missed. Placeholders as in 0001_base.sql.

DROP VIEW IF EXISTS ${db}.otel_prom_samples_5m_mv ${on_cluster};

DROP VIEW IF EXISTS ${db}.otel_prom_samples_1h_mv ${on_cluster};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_5m_mv ${on_cluster}
TO ${table:otel_metrics_5m}
AS SELECT
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
GROUP BY TimeBucket, SeriesId;

-- The inner SELECT filters by the stored columns (the outer one's aliases would shadow them).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_1h_mv ${on_cluster}
TO ${table:otel_metrics_1h}
AS SELECT
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
GROUP BY TimeBucket, SeriesId;
