-- Fragment: streams (service, severity, resource) with their entry counts and bytes; followed by
-- loki_filter*.sql and loki_streams_group.sql. Used by labels, label values, series and index stats.
SELECT ServiceName, SeverityText, ResourceAttributes, count(), sum(length(Body))
