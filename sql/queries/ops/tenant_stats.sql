-- Rows and estimated bytes on disk per tenant of one table (the supervisor's per-tenant gauges and
-- `otelingest status`). system.parts has bytes per part, not per tenant; the primary index has the
-- TenantId of each granule's first row (TenantId leads every sorting key), so each part's bytes
-- are shared out by its tenants' granule rows. Reads only the index (mergeTreeIndex), no column
-- data. Approximate at tenant boundaries: a granule (8,192 rows; 1,024 in otel_prom_series) that
-- holds two tenants counts for the first, so a tenant smaller than a granule may show 0.
SELECT
    i.TenantId AS tenant,
    sum(i.rows) AS rows,
    toUInt64(sum(i.rows / p.rows * p.bytes_on_disk)) AS bytes_on_disk
FROM
(
    SELECT part_name, TenantId, sum(rows_in_granule) AS rows
    FROM mergeTreeIndex({database:String}, {table:String})
    GROUP BY part_name, TenantId
) AS i
INNER JOIN
(
    SELECT name, rows, bytes_on_disk
    FROM system.parts
    WHERE database = {database:String} AND table = {table:String} AND active AND rows > 0
) AS p ON i.part_name = p.name
GROUP BY tenant
ORDER BY tenant
