-- Fragment: the WHERE conditions of a LogQL log query (appended after SELECT ... FROM otel_logs).
-- Stream labels: service_name, severity_text, level/detected_level (lower-case severity) and resource
-- attributes (host_name also matches host.name). Label filters after `| json` / `| logfmt` read the
-- parsed top-level field, else a log attribute, else a stream label. Matchers, line filters and label
-- filters arrive as arrays of bound values; regexes are RE2 (as in Loki), anchored by the caller.
WHERE Timestamp > fromUnixTimestamp64Nano({start_ns:Int64})
  AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
  AND arrayAll((val, o, v) -> multiIf(o = '=', val = v, o = '!=', val != v, o = '=~', match(val, v),
                                       o = '!~', NOT match(val, v), false),
        arrayMap(k -> multiIf(
            k = 'service_name', toString(ServiceName),
            k = 'severity_text', toString(SeverityText),
            k IN ('level', 'detected_level'), lower(SeverityText),
            mapContains(ResourceAttributes, k), ResourceAttributes[k],
            ResourceAttributes[replaceAll(k, '_', '.')]), {m_k:Array(String)}),
        {m_op:Array(String)}, {m_v:Array(String)})
  AND arrayAll(s -> position(Body, s) > 0, {contains:Array(String)})
  AND arrayAll(s -> position(Body, s) = 0, {not_contains:Array(String)})
  AND arrayAll(r -> match(Body, r), {line_re:Array(String)})
  AND arrayAll(r -> NOT match(Body, r), {line_nre:Array(String)})
  AND arrayAll((val, o, v) -> multiIf(
        o = '=',  val = v,
        o = '!=', val != v,
        o = '=~', match(val, v),
        o = '!~', NOT match(val, v),
        o = '>',  toFloat64OrNull(val) > toFloat64OrNull(v),
        o = '>=', toFloat64OrNull(val) >= toFloat64OrNull(v),
        o = '<',  toFloat64OrNull(val) < toFloat64OrNull(v),
        o = '<=', toFloat64OrNull(val) <= toFloat64OrNull(v),
        false),
      arrayMap(k -> multiIf(
            {parser:String} = 'json' AND JSONHas(Body, k),
                if(JSONType(Body, k) = 'String', JSONExtractString(Body, k), JSONExtractRaw(Body, k)),
            {parser:String} = 'logfmt' AND mapContains(extractKeyValuePairs(Body, '=', ' ', '"'), k),
                extractKeyValuePairs(Body, '=', ' ', '"')[k],
            mapContains(LogAttributes, k), LogAttributes[k],
            k = 'service_name', toString(ServiceName),
            k = 'severity_text', toString(SeverityText),
            k IN ('level', 'detected_level'), lower(SeverityText),
            mapContains(ResourceAttributes, k), ResourceAttributes[k],
            ResourceAttributes[replaceAll(k, '_', '.')]), {lf_k:Array(String)}),
      {lf_op:Array(String)}, {lf_v:Array(String)})
