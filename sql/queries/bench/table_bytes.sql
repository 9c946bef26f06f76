-- otelingest bench ingest: rows and bytes of the active parts of each table (columns compressed and
-- uncompressed; on disk = everything: columns, skip indexes, marks, primary index).
SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed,
       sum(data_uncompressed_bytes) AS uncompressed, count() AS parts, sum(bytes_on_disk) AS on_disk
FROM system.parts
WHERE active AND database = {db:String} AND table IN {tables:Array(String)}
GROUP BY table
