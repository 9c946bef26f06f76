-- Per-tenant retention (docs/tenancy.md, "Retention per tenant"): the TTL of each raw table and
-- lookup when some tenant's retention differs from the default one. One rule whose day count is
-- the row's tenant's: `tenants` and `days` are the tenants whose retention differs and their days,
-- `default_days` everyone else's (tenancy.defaults.retention, else [retention]). Bound as
-- parameters; ClickHouse stores the values in the table's definition (SHOW CREATE TABLE).
-- The rollups likewise, by their own keys (metrics_5m, metrics_1h, span_stats, dependencies).
-- Each statement names the table of the same statement in retention.sql (not the dependency job's
-- otel_service_dependency_hours: it keeps the longest days, HOURS_KEY in clickhouse/migrations.py).

ALTER TABLE ${table:otel_traces} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_trace_times} ${on_cluster} MODIFY TTL toDateTime(Start) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_trace_index} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_logs} ${on_cluster} MODIFY TTL toDateTime(Timestamp) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_metrics} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_metrics_metadata} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_metrics_exemplars} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_prom_samples} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_prom_series} ${on_cluster} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_metrics_5m} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_metrics_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_span_stats_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
ALTER TABLE ${table:otel_service_dependencies_1h} ${on_cluster} MODIFY TTL TimeBucket + toIntervalDay(transform(TenantId, {tenants:Array(String)}, {days:Array(UInt16)}, {default_days:UInt16}));
