"""OTLP receivers (gRPC and HTTP) of one receiver worker process."""
