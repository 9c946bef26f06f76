-- Detached parts of the daemon's database: ClickHouse sets aside a part it finds broken on start
-- (reason 'broken-on-start' and similar) or that an operator detached. Their rows are missing from
-- the table until re-attached or dropped. Used by the supervisor's part-health check.
SELECT
    table,
    name,
    ifNull(reason, '') AS reason,
    bytes_on_disk,
    path
FROM system.detached_parts
WHERE database = {database:String}
ORDER BY table, name
