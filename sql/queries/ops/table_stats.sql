-- Storage per MergeTree table of the daemon's database, from the active parts on this server:
-- rows, bytes on disk, compressed/uncompressed data bytes, parts, and the most parts in any one
-- partition ("too many parts" shows there first). Tables without parts report zeros (LEFT JOIN
-- fills defaults). Used by the supervisor's stats collector and by `otelingest status`.
SELECT
    t.name AS table,
    p.rows AS rows,
    p.bytes_on_disk AS bytes_on_disk,
    p.compressed_bytes AS compressed_bytes,
    p.uncompressed_bytes AS uncompressed_bytes,
    p.parts AS parts,
    p.max_partition_parts AS max_partition_parts
FROM system.tables AS t
LEFT JOIN
(
    SELECT
        table,
        sum(partition_rows) AS rows,
        sum(partition_bytes_on_disk) AS bytes_on_disk,
        sum(partition_compressed) AS compressed_bytes,
        sum(partition_uncompressed) AS uncompressed_bytes,
        sum(partition_parts) AS parts,
        max(partition_parts) AS max_partition_parts
    FROM
    (
        SELECT
            table,
            partition_id,
            sum(rows) AS partition_rows,
            sum(bytes_on_disk) AS partition_bytes_on_disk,
            sum(data_compressed_bytes) AS partition_compressed,
            sum(data_uncompressed_bytes) AS partition_uncompressed,
            count() AS partition_parts
        FROM system.parts
        WHERE database = {database:String} AND active
        GROUP BY table, partition_id
    )
    GROUP BY table
) AS p ON p.table = t.name
WHERE t.database = {database:String} AND t.engine LIKE '%MergeTree'
ORDER BY t.name
