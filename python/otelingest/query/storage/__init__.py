"""The query process's access to ClickHouse: the client pool, the store running named SQL with
limits and cancellation, the result cache, and which metrics table answers a time range."""
