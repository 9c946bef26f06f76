-- otelingest schema, version 4: which hours otel_service_dependencies_1h holds, and when each was
-- computed. Placeholders as in 0001_base.sql.
--
-- The dependency job records an hour here after computing it, with the time it read the spans. The
-- query service reads an hour from the rollup only when that time was late enough for the hour's
-- spans to have arrived (python/otelingest/query/dependencies.py) and joins raw spans for any other
-- hour: before this table it trusted the rollup for old hours, and undercounted the hours the job
-- never ran for. AggregatingMergeTree with max(ComputedAt): merges keep the latest computation of
-- an hour, however the job's inserts interleave.
CREATE TABLE IF NOT EXISTS ${table:otel_service_dependency_hours} ${on_cluster}
(
    TimeBucket DateTime CODEC(DoubleDelta, ZSTD(3)),
    ComputedAt SimpleAggregateFunction(max, DateTime64(3)) CODEC(ZSTD(3))
)
ENGINE = ${engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(TimeBucket)
ORDER BY TimeBucket
TTL TimeBucket + toIntervalDay(${ttl:dependencies})
SETTINGS ttl_only_drop_parts = 1;
-- @distributed otel_service_dependency_hours cityHash64(TimeBucket)
