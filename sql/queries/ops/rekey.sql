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
SELECT partition_id, arraySort(groupArray(name))
FROM system.parts
WHERE database = {db:String} AND table = {table:String} AND active
GROUP BY partition_id
ORDER BY partition_id

-- @fragment inserts_running
-- The barrier before a final pass: INSERTs still running in the database (writers' or views').
SELECT count()
FROM system.processes
WHERE query_kind = 'Insert'
  AND (current_database = {db:String} OR position(query, concat({db:String}, '.')) > 0)

-- @fragment stop_merges
SYSTEM STOP MERGES ${db}.${table}

-- @fragment start_merges
SYSTEM START MERGES ${db}.${table}

-- @fragment progress_table
CREATE TABLE IF NOT EXISTS ${db}.otelingest_rekey_progress
(
    TargetUuid  UUID,
    PartitionId String,
    Parts       Array(String),
    CopiedAt    DateTime64(9) DEFAULT now64(9)  -- the last record of a partition counts: ns apart
)
ENGINE = MergeTree
ORDER BY (TargetUuid, PartitionId)

-- @fragment copied_partitions
-- A partition copied again (its parts changed) is recorded again: the last record counts.
SELECT PartitionId, argMax(Parts, CopiedAt)
FROM ${db}.otelingest_rekey_progress
WHERE TargetUuid = {uuid:UUID}
GROUP BY PartitionId

-- @fragment mark_copied
INSERT INTO ${db}.otelingest_rekey_progress (TargetUuid, PartitionId, Parts)
VALUES ({uuid:UUID}, {partition:String}, {parts:Array(String)})

-- @fragment create_v2
CREATE TABLE IF NOT EXISTS ${db}.${v2} AS ${db}.${table} ENGINE = ${engine}

-- @fragment drop_partial
ALTER TABLE ${db}.${v2} DROP PARTITION ID {partition:String}

-- @fragment copy_partition
INSERT INTO ${db}.${v2} (${columns})
-- Exactly the parts recorded for it (read just before): one merged away meanwhile is missed, and
-- its absence from the table later says the partition must be copied again.
SELECT ${columns} FROM ${db}.${table}
WHERE _partition_id = {partition:String} AND has({parts:Array(String)}, _part)
SETTINGS insert_deduplicate = 0, max_execution_time = 0

-- @fragment copy_new_parts
-- The parts of a partition not recorded at its last copy (merges of ${src} stopped: the recorded
-- parts are all still there, so these hold exactly the rows inserted since).
INSERT INTO ${db}.${dst} (${columns})
SELECT ${columns} FROM ${db}.${src}
WHERE _partition_id = {partition:String} AND NOT has({parts:Array(String)}, _part)
SETTINGS insert_deduplicate = 0, max_execution_time = 0

-- @fragment exchange
EXCHANGE TABLES ${db}.${table} AND ${db}.${v2}

-- @fragment drop_old
DROP TABLE IF EXISTS ${db}.${v2} SYNC
