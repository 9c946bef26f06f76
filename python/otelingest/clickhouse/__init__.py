"""ClickHouse access: the embedded server and client connections."""
