-- Tenants whose rows a table holds (bench ingest --tenants: every tenant's spans stored as its own).
SELECT uniqExact(TenantId) FROM {db:Identifier}.{table:Identifier}
