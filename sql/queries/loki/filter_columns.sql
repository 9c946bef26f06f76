-- Fragment: the matchers on service_name, severity_text and level/detected_level that
-- loki/filter.sql has no slot for (a second `=` or `=~` on one label), as arrays of bound values
-- evaluated per row.
  AND arrayAll((val, o, v) -> multiIf(o = '=', val = v, o = '!=', val != v, o = '=~', match(val, v),
                                       o = '!~', NOT match(val, v), false),
        arrayMap(k -> multiIf(k = 'service_name', toString(ServiceName),
                              k = 'severity_text', toString(SeverityText),
                              lower(SeverityText)), {col_k:Array(String)}),
        {col_op:Array(String)}, {col_v:Array(String)})
