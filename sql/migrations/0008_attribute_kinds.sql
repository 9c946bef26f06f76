-- otelingest schema, version 8: the kind of each span and resource attribute value.
--
-- Attribute maps hold every value as text (README "Attribute values"), where the int 503 and the
-- string "503" look alike; TraceQL compares typed (`span.http.status_code >= 500` matches the int
-- 503, numerically, and not the string "503"). These columns hold one kind letter per map entry,
-- in the map's order: s string, b bool, i int, d double, a array, k kvlist, y bytes, e empty. The
-- kind of key k is substring(Kinds, indexOf(mapKeys(Attributes), k), 1). Rows written before this
-- version read '' (kind unknown): queries infer the kind from the text for them (docs/tempo.md).
-- A few bytes per span before compression, next to nothing after. Placeholders as in 0001_base.sql.

ALTER TABLE ${table:otel_traces} ${on_cluster}
    ADD COLUMN IF NOT EXISTS ResourceAttributeKinds String DEFAULT '' CODEC(ZSTD(3)) AFTER ResourceAttributes,
    ADD COLUMN IF NOT EXISTS SpanAttributeKinds String DEFAULT '' CODEC(ZSTD(3)) AFTER SpanAttributes;

-- In cluster mode the Distributed table declares the columns too; on a single node this is the
-- table above, already done.
ALTER TABLE ${db}.otel_traces ${on_cluster}
    ADD COLUMN IF NOT EXISTS ResourceAttributeKinds String DEFAULT '' AFTER ResourceAttributes,
    ADD COLUMN IF NOT EXISTS SpanAttributeKinds String DEFAULT '' AFTER SpanAttributes;
