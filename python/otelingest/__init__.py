"""otelingest: a high-throughput OpenTelemetry ingestion daemon storing into ClickHouse."""

__version__ = "0.1.0"
