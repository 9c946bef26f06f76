"""The query service: the design's API plus Jaeger-, Prometheus- and Loki-compatible APIs."""
