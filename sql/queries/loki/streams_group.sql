-- Fragment: grouping of loki/streams_select.sql.
GROUP BY ServiceName, SeverityText, ResourceHash
ORDER BY ServiceName, SeverityText
LIMIT {limit:UInt32}
