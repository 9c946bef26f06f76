-- Fragment: streams (service, severity, ResourceHash) with the time of one of their records (where
-- loki/stream_resources.sql reads their attributes) and their entry counts; optionally followed by
-- loki/bytes.sql, then loki/filter*.sql and loki/streams_group.sql. Used by labels, label values,
-- series and index stats.
SELECT ServiceName, SeverityText, ResourceHash, toUnixTimestamp64Nano(min(Timestamp)), count()
