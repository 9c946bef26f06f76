-- Rows a table holds (bench query --with-ingest: what the daemon stored while the queries ran).
SELECT count() FROM {db:Identifier}.{table:Identifier}
