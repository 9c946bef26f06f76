-- Fragment: the bytes of the lines, a column added to loki_counts_select.sql or
-- loki_streams_select.sql only when the query needs them (Body is the largest column).
     , sum(length(Body)) AS bytes
