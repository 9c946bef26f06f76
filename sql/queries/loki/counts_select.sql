-- Fragment: lines per stream per bucket of {bucket_ns} nanoseconds counted from {origin_ns}; bucket b
-- covers (origin + (b-1)w, origin + b*w]. A stream is (service, severity, ResourceHash); with
-- per_stream false, ResourceHash reads as 0 and the streams of a service and severity are counted
-- together (for a sum by those labels). first_ns: the time of one record of the stream, where
-- loki/stream_resources.sql reads its attributes. Optionally followed by loki/bytes.sql and
-- loki/counts_extracted.sql, then loki/filter*.sql and loki/counts_group.sql.
SELECT ServiceName, SeverityText, if({per_stream:Bool}, ResourceHash, 0) AS stream,
       intDiv(toUnixTimestamp64Nano(Timestamp) - {origin_ns:Int64} + {bucket_ns:Int64} - 1, {bucket_ns:Int64}) AS bucket,
       toUnixTimestamp64Nano(min(Timestamp)) AS first_ns, count() AS lines
