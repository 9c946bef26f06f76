-- otelingest bench clickhouse: merge a table's parts into one per partition.
OPTIMIZE TABLE {db:Identifier}.{table:Identifier} FINAL
