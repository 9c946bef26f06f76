-- Fragment (CTE `terms`) after promql/pushdown/neighbours_buckets.sql: a row per sample and step whose
-- window holds the sample and the one before it (so not as its first), with that window's count n,
-- first and last times t0/t1 and Prometheus' extrapolatedRate factor parts: the window's growth is
-- the sum of its rows' inc. Only delta points reach it (a window's value is its growth times a
-- factor of its times and count alone), so no window needs its first value.
, terms AS
(
    SELECT sid, gid, bid, k, t, v, inc, peers,
           {e0_ns:Int64} + toInt64(k) * {step_ns:Int64} AS ek,
           ek - {range_ns:Int64} AS lb,
           arrayCount(x -> x <= lb, before_t) AS i0,
           arrayCount(x -> x <= ek, after_t) AS c1,
           length(before_t) - i0 + c1 - 1 AS n,
           before_t[i0 + 1] AS t0,
           after_t[c1] AS t1,
           (t1 - t0) / 1e9 AS sampled,
           sampled / greatest(n - 1, 1) AS avg_between,
           (t0 - lb) / 1e9 AS to_start,
           (ek - t1) / 1e9 AS to_end,
           if({fn:String} = 'rate', {range_ns:Int64} / 1e9, 1) AS per,
           sampled + if(to_start < avg_between * 1.1, to_start, avg_between / 2)
                   + if(to_end < avg_between * 1.1, to_end, avg_between / 2) AS extrapolated
    FROM
    (
        SELECT sid, t, v, inc, before_t, after_t, peers,
               transform(sid, {series:Array(UInt64)}, {groups:Array(UInt32)}, toUInt32(0)) AS gid,
               transform(sid, {series:Array(UInt64)}, {bids:Array(UInt32)}, toUInt32(0)) AS bid,
               -- the steps whose window ends in [t, previous sample + range): holding both
               arrayJoin(range(
                   toUInt32(if(t <= {e0_ns:Int64}, 0, intDiv(t - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64}))),
                   toUInt32(least({steps:UInt32}, greatest(0, intDiv(t_prev + {range_ns:Int64} - {e0_ns:Int64} + {step_ns:Int64} - 1, {step_ns:Int64})))))) AS k
        FROM neighbours
    )
    -- Two samples a moment apart, as in Prometheus.
    WHERE n >= 2 AND t1 > t0
)
