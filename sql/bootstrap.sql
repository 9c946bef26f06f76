-- Run before any migration: the database and the record of applied migrations.
-- Placeholders as in migrations/0001_base.sql.

CREATE DATABASE IF NOT EXISTS ${db} ${on_cluster};

CREATE TABLE IF NOT EXISTS ${table:otelingest_schema_migrations} ${on_cluster}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3) DEFAULT now64(3)
)
ENGINE = ${engine:MergeTree}
ORDER BY version;
-- @distributed otelingest_schema_migrations rand()
