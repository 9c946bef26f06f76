-- Merges running now per table of the daemon's database, and the bytes they are rewriting.
SELECT
    table,
    count() AS merges,
    sum(total_size_bytes_compressed) AS bytes
FROM system.merges
WHERE database = {database:String}
GROUP BY table
ORDER BY table
