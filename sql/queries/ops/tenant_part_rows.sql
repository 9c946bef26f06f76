-- Rows per tenant of the named parts of one table (parts not yet counted; a part is immutable, so
-- its counts hold for as long as it is active). Reads only the TenantId column of those parts.
SELECT _part AS part, TenantId AS tenant, count() AS rows
FROM {database:Identifier}.{table:Identifier}
WHERE _part IN {parts:Array(String)}
GROUP BY part, tenant
