"""Writer processes: drain the rings, batch per table, INSERT into ClickHouse exactly once."""
