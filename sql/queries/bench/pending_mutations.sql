-- Mutations of a database still running (e.g. a migration's MATERIALIZE COLUMN on loaded data).
SELECT count()
FROM system.mutations
WHERE database = {db:String} AND NOT is_done
