-- ClickHouse's disks and their free space: free_space is already net of keep_free_space_bytes, and
-- unreserved_space is free_space less what inserts and merges in flight have reserved. Used by the
-- supervisor's disk floor (otelingest.diskfloor) every second.
SELECT
    name,
    path,
    free_space,
    unreserved_space,
    keep_free_space,
    total_space
FROM system.disks
ORDER BY name
