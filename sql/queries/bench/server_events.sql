-- otelingest bench ingest: the server's cumulative profile counters (sampled before and after the run).
SELECT event, value FROM system.events
