-- Fragment (CTE `ordered`) after a promql/pushdown/samples_* CTE, before promql/pushdown/windows*.sql: each sample
-- with the value before it in its series (prev; the first sample's own). A point stored twice (a
-- retried export) is one sample, as in Prometheus.
, ordered AS
(
    SELECT sid, t, v, prev
    FROM
    (
        SELECT sid, t, v, lagInFrame(v, 1, v) OVER w AS prev, t = lagInFrame(t, 1, toInt64(-9e18)) OVER w AS again
        FROM samples
        WINDOW w AS (PARTITION BY sid ORDER BY t ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
    WHERE NOT again
)
