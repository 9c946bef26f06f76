-- The benchmark's delta histogram once more as a cumulative one, what the OpenTelemetry SDKs export
-- by default, under the name {target}: each point's counts become its series' running totals, its
-- start time the series' first point. Rollups fill from it as from any insert.
INSERT INTO {db:Identifier}.otel_metrics
    (TimeUnix, StartTimeUnix, MetricName, MetricDescription, MetricUnit, MetricType, AggregationTemporality,
     IsMonotonic, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes, Count, Sum,
     BucketCounts, ExplicitBounds)
SELECT TimeUnix, first_value(TimeUnix) OVER w, {target:String}, MetricDescription, MetricUnit, MetricType,
       'Cumulative', IsMonotonic, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes,
       sum(Count) OVER w, sum(ifNull(Sum, 0)) OVER w, sumForEach(BucketCounts) OVER w, ExplicitBounds
FROM {db:Identifier}.otel_metrics
WHERE MetricName = {source:String}
WINDOW w AS (PARTITION BY SeriesId ORDER BY TimeUnix ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
