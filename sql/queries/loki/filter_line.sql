-- Fragment: line filters |= != |~ !~ (the only fragments besides loki/bytes.sql and the label
-- filters that read Body).
  AND arrayAll(s -> position(Body, s) > 0, {contains:Array(String)})
  AND arrayAll(s -> position(Body, s) = 0, {not_contains:Array(String)})
  AND arrayAll(r -> match(Body, r), {line_re:Array(String)})
  AND arrayAll(r -> NOT match(Body, r), {line_nre:Array(String)})
