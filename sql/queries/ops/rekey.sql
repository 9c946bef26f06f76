-- Rebuilding a table with a new sorting key (migration 0014's `-- @rekey`, python/otelingest/
-- clickhouse/rekey.py). Identifiers (${db}, ${table}, ${v2}, ${engine}, ${columns}) are substituted
-- by the runner from system.tables (names it has checked); values are bound parameters.

-- @fragment table_info
SELECT uuid, engine, engine_full, sorting_key
FROM system.tables
WHERE database = {db:String} AND name = {table:String}

-- @fragment stored_columns
SELECT name
FROM system.columns
WHERE database = {db:String} AND table = {table:String}
  AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL')
ORDER BY position

-- @fragment partitions
SELECT DISTINCT partition_id
FROM system.parts
WHERE database = {db:String} AND table = {table:String} AND active
ORDER BY partition_id

-- @fragment progress_table
CREATE TABLE IF NOT EXISTS ${db}.otelingest_rekey_progress
(
    TargetUuid  UUID,
    PartitionId String,
    CopiedAt    DateTime64(3) DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (TargetUuid, PartitionId)

-- @fragment copied_partitions
SELECT PartitionId FROM ${db}.otelingest_rekey_progress WHERE TargetUuid = {uuid:UUID}

-- @fragment mark_copied
INSERT INTO ${db}.otelingest_rekey_progress (TargetUuid, PartitionId) VALUES ({uuid:UUID}, {partition:String})

-- @fragment create_v2
CREATE TABLE IF NOT EXISTS ${db}.${v2} AS ${db}.${table} ENGINE = ${engine}

-- @fragment drop_partial
ALTER TABLE ${db}.${v2} DROP PARTITION ID {partition:String}

-- @fragment copy_partition
INSERT INTO ${db}.${v2} (${columns})
SELECT ${columns} FROM ${db}.${table} WHERE _partition_id = {partition:String}
SETTINGS insert_deduplicate = 0, max_execution_time = 0

-- @fragment exchange
EXCHANGE TABLES ${db}.${table} AND ${db}.${v2}

-- @fragment drop_old
DROP TABLE IF EXISTS ${db}.${v2} SYNC
