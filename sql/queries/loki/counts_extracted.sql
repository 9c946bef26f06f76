-- Fragment: the values a `by (...)` groups on that are not stream labels, one per key of
-- {group_keys}: the parsed top-level field after `| json` / `| logfmt`, else a log attribute, else ''
-- (a column added to loki/counts_select.sql).
     , arrayMap(k -> multiIf(
            {parser:String} = 'json' AND JSONHas(Body, k),
                if(JSONType(Body, k) = 'String', JSONExtractString(Body, k), JSONExtractRaw(Body, k)),
            {parser:String} = 'logfmt' AND mapContains(extractKeyValuePairs(Body, '=', ' ', '"'), k),
                extractKeyValuePairs(Body, '=', ' ', '"')[k],
            mapContains(LogAttributes, k), LogAttributes[k], ''), {group_keys:Array(String)}) AS extracted
