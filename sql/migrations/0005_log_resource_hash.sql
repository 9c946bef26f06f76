-- otelingest schema, version 5: a hash of each log record's resource attributes.
--
-- A Loki stream is (service, severity, resource attributes). Grouping log records by the Map reads
-- and hashes it for every row (the 24-hour Loki metric queries spent most of their time there);
-- grouping by this UInt64 does not, and each stream's attributes are then read once, at one of its
-- records (sql/queries/loki_stream_resources.sql). mapSort: the same attributes sent in another
-- order are the same stream. Placeholders as in 0001_base.sql.

ALTER TABLE ${table:otel_logs} ${on_cluster}
    ADD COLUMN IF NOT EXISTS ResourceHash UInt64 MATERIALIZED cityHash64(mapSort(ResourceAttributes)) CODEC(ZSTD(3))
    AFTER ResourceAttributes;

-- In cluster mode the Distributed table reads the column from the shards, so it declares it too
-- (as `CREATE TABLE ... AS` would have); on a single node this is the table above, already done.
ALTER TABLE ${db}.otel_logs ${on_cluster}
    ADD COLUMN IF NOT EXISTS ResourceHash UInt64 MATERIALIZED cityHash64(mapSort(ResourceAttributes))
    AFTER ResourceAttributes;

-- Parts written before this migration compute the column on read until this background
-- mutation has written it.
ALTER TABLE ${table:otel_logs} ${on_cluster} MATERIALIZE COLUMN ResourceHash
SETTINGS mutations_sync = 0;
