-- The active parts of the daemon's tables, for the per-tenant storage estimate (the supervisor's
-- per-tenant gauges): parts never change, so each part's rows per tenant are counted once
-- (ops/tenant_part_rows.sql) and its bytes shared out by them.
SELECT table, name, rows, bytes_on_disk
FROM system.parts
WHERE database = {database:String} AND active AND rows > 0 AND table IN {tables:Array(String)}
