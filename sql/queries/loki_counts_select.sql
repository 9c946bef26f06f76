-- Fragment: line counts and bytes per stream (plus the fields a `by (...)` groups on) per bucket of
-- {bucket_ns} nanoseconds counted from {origin_ns}; bucket b covers (origin + (b-1)w, origin + b*w].
-- Followed by loki_filter*.sql and loki_counts_group.sql.
SELECT ServiceName, SeverityText, ResourceAttributes,
       arrayMap(k -> multiIf(
            {parser:String} = 'json' AND JSONHas(Body, k),
                if(JSONType(Body, k) = 'String', JSONExtractString(Body, k), JSONExtractRaw(Body, k)),
            {parser:String} = 'logfmt' AND mapContains(extractKeyValuePairs(Body, '=', ' ', '"'), k),
                extractKeyValuePairs(Body, '=', ' ', '"')[k],
            mapContains(LogAttributes, k), LogAttributes[k], ''), {group_keys:Array(String)}) AS extracted,
       intDiv(toUnixTimestamp64Nano(Timestamp) - {origin_ns:Int64} + {bucket_ns:Int64} - 1, {bucket_ns:Int64}) AS bucket,
       count(), sum(length(Body))
