-- Fragment after promql/pushdown/latest.sql over a promql/pushdown/samples_*_bucket CTE: promql/pushdown/instant.sql for a
-- histogram's `_bucket` series kept as one array per point (an element per `le`): per group, bounds
-- and step the number of series and the element-wise sum of their latest sample.
SELECT transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
       transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid, k, count(), sumForEach(v)
FROM latest
GROUP BY gid, bid, k
