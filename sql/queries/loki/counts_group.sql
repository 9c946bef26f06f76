-- Fragment: grouping of loki/counts_select.sql by every selected column that is not an aggregate
-- (stream, bucket and, with loki/counts_extracted.sql, the extracted values).
GROUP BY ALL
