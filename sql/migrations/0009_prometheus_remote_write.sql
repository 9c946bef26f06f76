-- otelingest schema, version 8: what Prometheus remote write brings besides samples (the samples
-- themselves are otel_metrics rows, see rust/src/prom/remote_write.rs). Placeholders as in
-- 0001_base.sql.
--
-- Metadata (type, unit, help per metric family), sent by Prometheus about once a minute: one row per
-- entry received; /api/v1/metadata reads the latest of each family in its window.
CREATE TABLE IF NOT EXISTS ${table:otel_metrics_metadata} ${on_cluster}
(
    TimeUnix         DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    MetricFamilyName LowCardinality(String) CODEC(ZSTD(3)),
    Type             LowCardinality(String) CODEC(ZSTD(3)),
    Unit             LowCardinality(String) CODEC(ZSTD(3)),
    Help             String CODEC(ZSTD(3))
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(TimeUnix)
ORDER BY (MetricFamilyName, TimeUnix)
TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_metrics_metadata cityHash64(MetricFamilyName)

-- Exemplars: Prometheus sends them as series of their own, without samples, so they are rows of
-- their own rather than otel_metrics' Exemplars of a point. Attributes are the series' labels
-- (all but __name__, verbatim), FilteredAttributes the exemplar's; a trace_id/span_id label in hex
-- also fills TraceId/SpanId.
CREATE TABLE IF NOT EXISTS ${table:otel_metrics_exemplars} ${on_cluster}
(
    TimeUnix           DateTime64(9) CODEC(Delta(8), ZSTD(3)),
    MetricName         LowCardinality(String) CODEC(ZSTD(3)),
    ServiceName        LowCardinality(String) CODEC(ZSTD(3)),
    Attributes         Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    FilteredAttributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    Value              Float64 CODEC(ZSTD(3)),
    TraceId            FixedString(16) CODEC(ZSTD(3)),
    SpanId             FixedString(8) CODEC(ZSTD(3))
)
ENGINE = ${engine:MergeTree}
PARTITION BY toDate(TimeUnix)
ORDER BY (MetricName, ServiceName, TimeUnix)
TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_metrics_exemplars cityHash64(MetricName, ServiceName)
