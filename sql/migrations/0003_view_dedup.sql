-- otelingest schema, version 3: deduplication windows on the materialized views' target tables.
--
-- A replayed batch (same insert_deduplication_token, after a writer crash or from the disk spill)
-- is dropped by otel_traces/otel_metrics, but the views still push their rows to the targets;
-- with deduplicate_blocks_in_dependent_materialized_views = 1 (set on every writer INSERT) the
-- targets drop them only if they keep a window of block hashes too. Without it a replay doubled
-- the trace index and the hourly counts. Placeholders as in 0001_base.sql.

ALTER TABLE ${table:otel_trace_times} ${on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${table:otel_trace_index} ${on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${table:otel_metrics_5m} ${on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${table:otel_metrics_1h} ${on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;
