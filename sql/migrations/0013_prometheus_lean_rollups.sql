-- otelingest schema, version 13: cheaper rollups of remote-written samples (issue 17).
--
-- 0012's two views computed every rollup state from every narrow row, t-digest and histogram
-- states included, and the hourly one again from the raw rows: about three quarters of
-- ClickHouse's insert work (docs/benchmarks.md "Remote write: lean rollups"). Now:
--   * the 5-minute view keeps what is read for a float series: Points, ValueSum/Min/Max and the
--     first and last values (PromQL reads ValueLast; the design's metric API the others). The
--     t-digest, Count/Sum and bucket states of these rows are left empty (defaults): remote-written
--     series are gauges, and t-digest quantiles of them over a rollup window are not kept
--     (docs/promql.md "Throughput");
--   * the hourly view is fed from the 5-minute rows (a view on the 5-minute table), not from raw
--     rows, selecting only the rows the 5-minute view above wrote (its constant resource marker and
--     empty attribute map; rows of otel_metrics' own view always carry attributes or other resource
--     keys).
-- Rollup rows already written stay as they are (same tables, same columns); the migration runs
-- before any writer inserts, so no sample is rolled up twice or missed. Placeholders as in
-- 0001_base.sql.

DROP VIEW IF EXISTS ${db}.otel_prom_samples_5m_mv ${on_cluster};

DROP VIEW IF EXISTS ${db}.otel_prom_samples_1h_mv ${on_cluster};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_5m_mv ${on_cluster}
TO ${table:otel_metrics_5m}
AS SELECT
    toStartOfFiveMinutes(TimeUnix) AS TimeBucket,
    MetricName, CAST('Gauge', 'Enum8(\'Gauge\' = 1, \'Sum\' = 2, \'Histogram\' = 3, \'ExponentialHistogram\' = 4, \'Summary\' = 5)') AS MetricType,
    CAST('Unspecified', 'Enum8(\'Unspecified\' = 0, \'Delta\' = 1, \'Cumulative\' = 2)') AS AggregationTemporality,
    false AS IsMonotonic, ServiceName, SeriesId,
    map('otelingest.source', 'prometheus.remote_write') AS ResourceAttributes,
    toUInt64(count()) AS Points,
    sum(Value) AS ValueSum,
    min(Value) AS ValueMin,
    max(Value) AS ValueMax,
    argMinState(Value, TimeUnix) AS ValueFirst,
    argMaxState(Value, TimeUnix) AS ValueLast
FROM ${table:otel_prom_samples}
GROUP BY TimeBucket, MetricName, ServiceName, SeriesId;

-- The inner SELECT filters by the stored columns (the outer one's aliases would shadow them).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_prom_samples_1h_mv ${on_cluster}
TO ${table:otel_metrics_1h}
AS SELECT
    toStartOfHour(TimeBucket) AS TimeBucket,
    MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId,
    any(ResourceAttributes) AS ResourceAttributes,
    sum(Points) AS Points,
    sum(ValueSum) AS ValueSum,
    min(ValueMin) AS ValueMin,
    max(ValueMax) AS ValueMax,
    argMinMergeState(ValueFirst) AS ValueFirst,
    argMaxMergeState(ValueLast) AS ValueLast
FROM
(
    SELECT *
    FROM ${table:otel_metrics_5m}
    WHERE MetricType = 'Gauge'
      AND ResourceAttributes = map('otelingest.source', 'prometheus.remote_write')
      AND empty(Attributes)
)
GROUP BY TimeBucket, MetricName, MetricType, AggregationTemporality, IsMonotonic, ServiceName, SeriesId;
