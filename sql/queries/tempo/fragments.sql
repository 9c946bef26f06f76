-- TraceQL fragments, composed by otelingest.query.traceql.planner into tempo_search_*.sql and
-- tempo_metrics_*.sql. Each `-- @fragment NAME` section runs to the next one. The planner fills the
-- slots (%NAME%) only with other fragments of this file, and gives every {param:Type} of a
-- fragment a numbered name per use ({v:String} -> {v_3:String}): values are always bound, never
-- written into the SQL. Comparison operators are bound too ({op:String}); multiIf over a constant
-- folds to the one comparison.
--
-- Attribute values are text with a kind letter per entry (README "Attribute values", migration
-- 0008): s string, b bool, i int, d double. Comparisons are typed as in Tempo: a string literal
-- matches string values only, a number int and double values only (compared numerically), a bool
-- bool values only; a missing attribute matches nothing but `= nil`.

-- @fragment true
1
-- @fragment false
0
-- @fragment and
(%A%) AND (%B%)
-- @fragment or
(%A%) OR (%B%)
-- @fragment not
NOT (%A%)
-- @fragment leaf_column
(%A%) AS c%N%
-- @fragment leaf_ref
c%N%
-- @fragment leaf_any
max(c%N%)
-- @fragment column_sep
,

-- Kind of a value whose row predates migration 0008 (or whose map has no kinds): from its text.
-- @fragment infer_kind
multiIf(match(%TEXT%, '^-?[0-9]+$'), 'i',
        %TEXT% IN ('true', 'false'), 'b',
        match(%TEXT%, '^-?([0-9]+[.][0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$|^-?[0-9]+[eE][-+]?[0-9]+$|^(NaN|-?Infinity)$'), 'd',
        's')

-- Value sources: what exists, its text, its kind.
-- @fragment span_exists
mapContains(SpanAttributes, {k:String})
-- @fragment span_text
SpanAttributes[{k:String}]
-- @fragment span_kind
if(SpanAttributeKinds = '', %INFER%, substring(SpanAttributeKinds, indexOf(mapKeys(SpanAttributes), {k:String}), 1))
-- @fragment resource_exists
mapContains(ResourceAttributes, {k:String})
-- @fragment resource_text
ResourceAttributes[{k:String}]
-- @fragment resource_kind
if(ResourceAttributeKinds = '', %INFER%, substring(ResourceAttributeKinds, indexOf(mapKeys(ResourceAttributes), {k:String}), 1))
-- Unscoped `.k`: the span's attribute, else the resource's.
-- @fragment any_exists
(mapContains(SpanAttributes, {k:String}) OR mapContains(ResourceAttributes, {k:String}))
-- @fragment any_text
if(mapContains(SpanAttributes, {k:String}), SpanAttributes[{k:String}], ResourceAttributes[{k:String}])
-- @fragment any_kind
if(mapContains(SpanAttributes, {k:String}),
   if(SpanAttributeKinds = '', %INFER%, substring(SpanAttributeKinds, indexOf(mapKeys(SpanAttributes), {k:String}), 1)),
   if(ResourceAttributeKinds = '', %INFER%, substring(ResourceAttributeKinds, indexOf(mapKeys(ResourceAttributes), {k:String}), 1)))
-- Scope (instrumentation) attributes carry no kinds: inferred from the text.
-- @fragment instrumentation_exists
mapContains(ScopeAttributes, {k:String})
-- @fragment instrumentation_text
ScopeAttributes[{k:String}]
-- Event and link attributes: inside arrayExists over the maps (lambda variable m); kinds inferred.
-- @fragment map_exists
mapContains(m, {k:String})
-- @fragment map_text
m[{k:String}]
-- @fragment events_any
arrayExists(m -> %A%, Events.Attributes)
-- @fragment links_any
arrayExists(m -> %A%, Links.Attributes)
-- Array intrinsics (lambda variable x).
-- @fragment event_names_any
arrayExists(x -> %A%, Events.Name)
-- @fragment link_trace_ids_any
arrayExists(x -> %A%, arrayMap(t -> lower(hex(t)), Links.TraceId))
-- @fragment link_span_ids_any
arrayExists(x -> %A%, arrayMap(t -> lower(hex(t)), Links.SpanId))
-- @fragment x
x
-- @fragment kind_string
's'
-- Intrinsic columns as text.
-- @fragment col_name
toString(SpanName)
-- @fragment col_status_message
StatusMessage
-- @fragment col_root_name
RootName
-- @fragment col_root_service
RootServiceName
-- @fragment col_scope_name
toString(ScopeName)
-- @fragment col_scope_version
toString(ScopeVersion)
-- @fragment col_span_id
lower(hex(SpanId))
-- @fragment col_parent_id
lower(hex(ParentSpanId))
-- @fragment col_trace_id
lower(hex(TraceId))
-- @fragment col_service
toString(ServiceName)
-- @fragment col_kind
lower(toString(SpanKind))
-- @fragment col_status
lower(toString(StatusCode))

-- Comparisons. %EXISTS%, %TEXT%, %KIND% come from a value source.
-- @fragment cmp_str
(%EXISTS% AND %KIND% = 's' AND multiIf(
    {op:String} = '=', %TEXT% = {v:String},
    {op:String} = '!=', %TEXT% != {v:String},
    {op:String} = '=~', match(%TEXT%, {v:String}),
    {op:String} = '!~', NOT match(%TEXT%, {v:String}),
    {op:String} = '>', %TEXT% > {v:String},
    {op:String} = '>=', %TEXT% >= {v:String},
    {op:String} = '<', %TEXT% < {v:String},
    {op:String} = '<=', %TEXT% <= {v:String},
    false))
-- An int literal: exact against int values, as a double against double values.
-- @fragment cmp_int
(%EXISTS% AND multiIf(
    %KIND% = 'i', multiIf(
        {op:String} = '=', toInt64OrNull(%TEXT%) = {v:Int64},
        {op:String} = '!=', toInt64OrNull(%TEXT%) != {v:Int64},
        {op:String} = '>', toInt64OrNull(%TEXT%) > {v:Int64},
        {op:String} = '>=', toInt64OrNull(%TEXT%) >= {v:Int64},
        {op:String} = '<', toInt64OrNull(%TEXT%) < {v:Int64},
        {op:String} = '<=', toInt64OrNull(%TEXT%) <= {v:Int64},
        false),
    %KIND% = 'd', multiIf(
        {op:String} = '=', toFloat64OrNull(%TEXT%) = toFloat64({v:Int64}),
        {op:String} = '!=', toFloat64OrNull(%TEXT%) != toFloat64({v:Int64}),
        {op:String} = '>', toFloat64OrNull(%TEXT%) > toFloat64({v:Int64}),
        {op:String} = '>=', toFloat64OrNull(%TEXT%) >= toFloat64({v:Int64}),
        {op:String} = '<', toFloat64OrNull(%TEXT%) < toFloat64({v:Int64}),
        {op:String} = '<=', toFloat64OrNull(%TEXT%) <= toFloat64({v:Int64}),
        false),
    false))
-- @fragment cmp_float
(%EXISTS% AND %KIND% IN ('i', 'd') AND multiIf(
    {op:String} = '=', toFloat64OrNull(%TEXT%) = {v:Float64},
    {op:String} = '!=', toFloat64OrNull(%TEXT%) != {v:Float64},
    {op:String} = '>', toFloat64OrNull(%TEXT%) > {v:Float64},
    {op:String} = '>=', toFloat64OrNull(%TEXT%) >= {v:Float64},
    {op:String} = '<', toFloat64OrNull(%TEXT%) < {v:Float64},
    {op:String} = '<=', toFloat64OrNull(%TEXT%) <= {v:Float64},
    false))
-- @fragment cmp_bool
(%EXISTS% AND %KIND% = 'b' AND multiIf(
    {op:String} = '=', %TEXT% = {v:String},
    {op:String} = '!=', %TEXT% != {v:String},
    false))
-- @fragment cmp_nil
if({op:String} = '=', NOT %EXISTS%, %EXISTS%)
-- Unsigned nanosecond columns (Duration, TraceDuration) against a duration or a number of ns.
-- @fragment cmp_ns
multiIf(
    {op:String} = '=', toInt64(%COL%) = {v:Int64},
    {op:String} = '!=', toInt64(%COL%) != {v:Int64},
    {op:String} = '>', toInt64(%COL%) > {v:Int64},
    {op:String} = '>=', toInt64(%COL%) >= {v:Int64},
    {op:String} = '<', toInt64(%COL%) < {v:Int64},
    {op:String} = '<=', toInt64(%COL%) <= {v:Int64},
    false)
-- @fragment col_duration
Duration
-- @fragment col_trace_duration
TraceDuration
-- Span status and kind, compared with their literals (= and != only).
-- @fragment cmp_status
if({op:String} = '=', StatusCode = {v:String}, StatusCode != {v:String})
-- @fragment cmp_span_kind
if({op:String} = '=', SpanKind = {v:String}, SpanKind != {v:String})

-- Output values of an attribute or intrinsic for the response: (exists, text, kind).
-- @fragment value_tuple
tuple(%EXISTS%, %TEXT%, %KIND%)

-- Root spans only (tag values of rootName / rootServiceName, read without the window columns).
-- @fragment is_root
ParentSpanId = toFixedString('\0\0\0\0\0\0\0\0', 8)

-- Metrics: no by() (one group), the function's numeric argument.
-- @fragment empty_tuple
tuple()
-- @fragment tuple_of
tuple(%A%)
-- @fragment duration_seconds
Duration / 1e9
-- @fragment numeric_value
if(%EXISTS% AND %KIND% IN ('i', 'd'), toFloat64OrNull(%TEXT%), NULL)
-- @fragment null_value
CAST(NULL AS Nullable(Float64))
-- Log2 histogram buckets: durations by a power of two nanoseconds (Tempo's), shown in seconds.
-- @fragment duration_bucket
exp2(ceil(log2(greatest(Duration, 1)))) / 1e9
-- @fragment value_bucket
if(v > 0, exp2(ceil(log2(v))), 0)
-- @fragment no_bucket
CAST(NULL AS Nullable(Float64))

-- Array attributes (kind a, stored as a JSON array): `=`, `=~` and the orderings match when an
-- element matches; `!=` and `!~` when no element matches the `=` / `=~` (Tempo's rule).
-- %POS% is the comparison applied to each element (lambda variable e) with the positive operator.
-- The array branch is evaluated only on array values (if() short-circuits): an OR of both halves
-- costed every other row twice as much.
-- @fragment with_arrays
if(%EXISTS% AND %KIND% = 'a',
   if({neg:Bool}, NOT arrayExists(e -> %POS%, JSONExtractArrayRaw(%TEXT%)),
       arrayExists(e -> %POS%, JSONExtractArrayRaw(%TEXT%))),
   %SCALAR%)
-- @fragment elem_text
if(JSONType(e) = 'String', JSONExtractString(e), e)
-- @fragment elem_kind
multiIf(JSONType(e) = 'String', 's', JSONType(e) IN ('Int64', 'UInt64'), 'i', JSONType(e) = 'Double', 'd',
        JSONType(e) = 'Bool', 'b', '')
-- Tempo's legacy `tags` search: a case-insensitive substring of the value's text, whatever its kind.
-- @fragment cmp_text
(%EXISTS% AND match(%TEXT%, {v:String}))
-- @fragment not_root
ParentSpanId != toFixedString('\0\0\0\0\0\0\0\0', 8)
