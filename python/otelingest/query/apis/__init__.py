"""The HTTP APIs the query process serves, each exporting its ``routes``: the design's own
(:mod:`.native`), Jaeger, Prometheus, Loki and Tempo."""
