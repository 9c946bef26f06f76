-- Fragment: the bytes of the lines, a column added to loki/counts_select.sql or
-- loki/streams_select.sql only when the query needs them (Body is the largest column).
     , sum(length(Body)) AS bytes
