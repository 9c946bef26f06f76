-- otelingest bench ingest: copy up to {rows} stored spans into the sample table (same structure).
INSERT INTO {db:Identifier}.bench_traces_sample
SELECT * FROM {db:Identifier}.otel_traces LIMIT {rows:UInt64}
