-- otelingest bench clickhouse: the MergeTree tables of one database (what OPTIMIZE FINAL and the
-- bytes per item cover).
SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' ORDER BY name
