-- otelingest bench clickhouse: CPU seconds of the merges of each table of one database (background
-- and OPTIMIZE FINAL alike).
SELECT table, sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']) / 1e6 AS cpu_s, count() AS merges
FROM system.part_log
WHERE database = {db:String} AND event_type = 'MergeParts'
GROUP BY table
ORDER BY table
