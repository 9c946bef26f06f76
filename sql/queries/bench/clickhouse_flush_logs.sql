-- otelingest bench clickhouse: write the system logs' buffers out, so a round's rows are all there.
SYSTEM FLUSH LOGS
