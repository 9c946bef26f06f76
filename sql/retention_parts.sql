-- Whether TTL drops only whole parts (1, the tables' setting since 0001) or deletes expired rows in
-- merges (0). With one retention for every row, a part's rows expire together and whole-part drops
-- are the cheap way; with per-tenant retention a part mixes tenants whose rows expire on different
-- days, so a tenant's expired rows must be deleted from parts that also hold another's (0).

ALTER TABLE ${table:otel_traces} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_trace_times} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_trace_index} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_logs} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_metrics} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_metrics_metadata} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_metrics_exemplars} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_prom_samples} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_prom_series} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_metrics_5m} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_metrics_1h} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
ALTER TABLE ${table:otel_service_dependencies_1h} ${on_cluster} MODIFY SETTING ttl_only_drop_parts = {only_drop_parts:UInt8};
