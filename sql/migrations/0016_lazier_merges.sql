-- otelingest schema, version 16: spans and log records merged fewer times (issue 20).
--
-- Merges were half of ClickHouse's CPU for a span: every part of otel_traces was rewritten again
-- each time about five parts of its size had gathered (ClickHouse's merge_selector_base, 5 by
-- default). At 20, a merge waits for about twenty, so each row is rewritten fewer times over its
-- life (docs/benchmarks.md, "Sixth pass"). The price is more active parts at a time, bounded:
-- ClickHouse lowers the base toward 1 for parts older than 10 s and for partitions of more than 10
-- parts (its SimpleMergeSelector).
--
-- Settings only: no part is rewritten, no row added or removed, and the writers' blocks do not
-- change. Placeholders as in 0001_base.sql.
-- @writers-unchanged

ALTER TABLE ${table:otel_traces} ${on_cluster} MODIFY SETTING merge_selector_base = 20;

ALTER TABLE ${table:otel_trace_index} ${on_cluster} MODIFY SETTING merge_selector_base = 20;

ALTER TABLE ${table:otel_trace_times} ${on_cluster} MODIFY SETTING merge_selector_base = 20;

ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster} MODIFY SETTING merge_selector_base = 20;

ALTER TABLE ${table:otel_logs} ${on_cluster} MODIFY SETTING merge_selector_base = 20;
