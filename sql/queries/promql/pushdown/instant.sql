-- Fragment after promql/pushdown/latest.sql: `{agg} by (group) (selector)` evaluated in ClickHouse, one row
-- per group and step: each series' latest sample per step, then the aggregation over the series of a
-- group, as in promql/pushdown/range.sql. A NaN sample is a value: sum and avg become NaN, min and max
-- skip it unless all are NaN (as ClickHouse's min/max do, and Prometheus), count counts it.
SELECT gid, k,
       multiIf({agg:String} = 'sum', sum(x), {agg:String} = 'avg', avg(x), {agg:String} = 'min', min(x),
               {agg:String} = 'max', max(x), toFloat64(count())) AS value
FROM
(
    SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid, v AS x, k
    FROM latest
)
GROUP BY gid, k
