"""Background jobs the supervisor runs against ClickHouse with the writing user."""
