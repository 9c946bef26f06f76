-- otelingest bench ingest: rows and bytes of the active parts of each table.
SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed,
       sum(data_uncompressed_bytes) AS uncompressed, count() AS parts
FROM system.parts
WHERE active AND database = {db:String} AND table IN {tables:Array(String)}
GROUP BY table
