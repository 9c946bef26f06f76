-- Fragment: label filters `| key op value`. After `| json` / `| logfmt` they read the parsed
-- top-level field, else a log attribute, else a stream label.
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
