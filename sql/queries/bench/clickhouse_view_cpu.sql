-- otelingest bench clickhouse: CPU seconds each materialized view of one database spent in the INSERTs.
SELECT splitByChar('.', view_name)[-1] AS view, sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']) / 1e6 AS cpu_s
FROM system.query_views_log
WHERE startsWith(view_name, concat({db:String}, '.'))
GROUP BY view
ORDER BY view
