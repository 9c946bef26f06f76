-- Fragment: FROM and the WHERE conditions every LogQL log query has (after a select fragment, before
-- the optional loki_filter_* fragments and a grouping or order fragment): the window, and the stream
-- matchers on service_name, severity_text and level/detected_level (lower-case severity) as plain
-- predicates on the columns, which ClickHouse evaluates once per dictionary value of these
-- LowCardinality columns. One matcher per label and operator has a slot here (all `!=` / `!~`
-- together); an empty array or string is an unused slot, folded away as a constant. Regexes are
-- RE2 (as in Loki), anchored by the caller, so a used regex slot is never empty.
FROM otel_logs
WHERE TenantId = {tenant:String}
  AND Timestamp > fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND ServiceName NOT IN {service_ne:Array(String)}
  AND match(ServiceName, {service_re:String})
  AND (empty({service_nre:String}) OR NOT match(ServiceName, {service_nre:String}))
  AND (empty({severity_eq:Array(String)}) OR SeverityText IN {severity_eq:Array(String)})
  AND SeverityText NOT IN {severity_ne:Array(String)}
  AND match(SeverityText, {severity_re:String})
  AND (empty({severity_nre:String}) OR NOT match(SeverityText, {severity_nre:String}))
  AND (empty({level_eq:Array(String)}) OR lower(SeverityText) IN {level_eq:Array(String)})
  AND lower(SeverityText) NOT IN {level_ne:Array(String)}
  AND match(lower(SeverityText), {level_re:String})
  AND (empty({level_nre:String}) OR NOT match(lower(SeverityText), {level_nre:String}))
