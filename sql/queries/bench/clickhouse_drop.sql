-- otelingest bench clickhouse: a variant's database, once measured.
DROP DATABASE IF EXISTS {db:Identifier} SYNC
