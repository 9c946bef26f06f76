-- Fragment: grouping of loki_counts_select.sql by every selected column that is not an aggregate
-- (stream, bucket and, with loki_counts_extracted.sql, the extracted values).
GROUP BY ALL
