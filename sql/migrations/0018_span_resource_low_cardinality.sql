-- otelingest schema, version 18: LowCardinality where otel_traces repeats itself (issue 20).
-- Placeholders as in 0001_base.sql.
--
-- A span row carries its resource's attributes (the same map on every span of a service) and one
-- kind letter per attribute (0008: a handful of distinct strings). As String they were 124 of the
-- 345 uncompressed bytes per span that every INSERT and merge compresses again; as dictionaries
-- they are an index per entry. Measured on the bench's spans (docs/benchmarks.md, "ClickHouse's
-- work per span"): otel_traces 36.0 -> 32.4 bytes per span, ClickHouse's CPU per span unchanged
-- within the noise. Readers see the same strings: LowCardinality(String) compares, indexes maps and
-- reads back as String does.
--
-- A type change is a mutation: ClickHouse rewrites these columns of the existing parts in the
-- background (mutations_sync = 0: the ALTER returns at once, and until a part is rewritten its
-- values are converted on read). No row is added or removed; the writers keep inserting String
-- blocks, converted on insert as the other LowCardinality columns are.

ALTER TABLE ${table:otel_traces} ${on_cluster}
    MODIFY COLUMN ResourceAttributes Map(LowCardinality(String), LowCardinality(String)) CODEC(ZSTD(3)),
    MODIFY COLUMN ResourceAttributeKinds LowCardinality(String) DEFAULT '' CODEC(ZSTD(3)),
    MODIFY COLUMN SpanAttributeKinds LowCardinality(String) DEFAULT '' CODEC(ZSTD(3))
SETTINGS mutations_sync = 0;

-- In cluster mode the Distributed table declares the types too; on a single node this is the
-- table above, already done.
ALTER TABLE ${db}.otel_traces ${on_cluster}
    MODIFY COLUMN ResourceAttributes Map(LowCardinality(String), LowCardinality(String)),
    MODIFY COLUMN ResourceAttributeKinds LowCardinality(String) DEFAULT '',
    MODIFY COLUMN SpanAttributeKinds LowCardinality(String) DEFAULT '';
