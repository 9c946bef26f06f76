-- otelingest bench clickhouse: CPU seconds of the measured INSERTs into one database (their views'
-- work included; those the migrations run carry no log_comment), and how many there were.
SELECT sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']) / 1e6 AS cpu_s, count() AS inserts
FROM system.query_log
WHERE type = 'QueryFinish' AND query_kind = 'Insert' AND has(databases, {db:String}) AND log_comment = {comment:String}
