-- Fragment: grouping of loki_counts_select.sql.
GROUP BY ServiceName, SeverityText, ResourceAttributes, extracted, bucket
