-- Points stored under a metric name.
SELECT count() FROM {db:Identifier}.otel_metrics WHERE MetricName = {name:String}
