-- otelingest schema, version 10: a slimmer search index (otel_trace_index), cheaper for ClickHouse
-- to write and merge. Placeholders as in 0001_base.sql.
--
-- Measured on the bench's spans (docs/benchmarks.md, "ClickHouse's work per span"): the index was
-- 29.4 bytes per span, a third of them SpanId (8 random bytes no codec shrinks) and its TraceId bloom
-- filter (nothing reads the index by trace id: otel_trace_times answers "where is trace T"). Trace
-- search returns trace ids only, so SpanId goes; TraceId and Duration are random, so LZ4 stores
-- them as well as ZSTD(3) does for less CPU per insert and merge. 29.4 -> 22.2 bytes per span.
--
-- Order matters for a daemon inserting meanwhile: the view stops selecting SpanId first, then the
-- column goes; an insert in between writes the column's default. Nothing is rewritten but the
-- index's parts (the DROP COLUMN mutation runs in the background); no row is added or removed.

ALTER TABLE ${db}.otel_trace_index_mv ${on_cluster} MODIFY QUERY
SELECT
    Timestamp, ServiceName, SpanName, SpanKind, Duration, StatusCode,
    toUInt8(ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)) AS IsRoot,
    TraceId
FROM ${table:otel_traces};

ALTER TABLE ${table:otel_trace_index} ${on_cluster}
    DROP INDEX IF EXISTS idx_trace_id,
    MODIFY COLUMN TraceId FixedString(16) CODEC(LZ4),
    MODIFY COLUMN Duration UInt64 CODEC(T64, LZ4);

ALTER TABLE ${table:otel_trace_index} ${on_cluster} DROP COLUMN IF EXISTS SpanId
SETTINGS mutations_sync = 0;

-- In cluster mode the Distributed table drops the column too; on a single node this is the table
-- above, already done.
ALTER TABLE ${db}.otel_trace_index ${on_cluster} DROP COLUMN IF EXISTS SpanId;
