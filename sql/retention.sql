-- Applied after migrations, each only where the table's TTL differs from [retention] in the config.
-- Each statement names one table and one retention key. Placeholders as in migrations/0001_base.sql.

ALTER TABLE ${table:otel_traces} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(${ttl:traces});
ALTER TABLE ${table:otel_trace_times} ${on_cluster} MODIFY TTL toDateTime(Start) + toIntervalDay(${ttl:traces});
ALTER TABLE ${table:otel_trace_index} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(${ttl:traces});
ALTER TABLE ${table:otel_logs} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(${ttl:logs});
ALTER TABLE ${table:otel_metrics} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics});
ALTER TABLE ${table:otel_metrics_5m} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(${ttl:metrics_5m});
ALTER TABLE ${table:otel_metrics_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(${ttl:metrics_1h});
ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(${ttl:span_stats});
ALTER TABLE ${table:otel_service_dependencies_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(${ttl:dependencies});
-- Which hours the dependency job computed: the longest dependencies days of any tenant (HOURS_KEY).
ALTER TABLE ${table:otel_service_dependency_hours} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(${ttl:dependency_hours});
ALTER TABLE ${table:otel_metrics_metadata} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics});
ALTER TABLE ${table:otel_metrics_exemplars} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics});
ALTER TABLE ${table:otel_prom_samples} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metrics});
-- A series' labels (remote-written, and OTLP since 0015) are read with its rollups too (their rows
-- carry none): kept the longest of metrics, metrics_5m and metrics_1h (migrations.py, SERIES_KEY).
ALTER TABLE ${table:otel_prom_series} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(${ttl:metric_series});
