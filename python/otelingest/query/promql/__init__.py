"""PromQL over the OTel metrics tables: text to tree (:mod:`.parse`), OTel -> Prometheus naming
(:mod:`.naming`), label matchers (:mod:`.matchers`), data access (:mod:`.source`, :mod:`.buckets`),
the evaluator (:mod:`.evaluator`) and what it computes with (:mod:`.values`, :mod:`.ranges`,
:mod:`.functions`, :mod:`.quantiles`, :mod:`.aggregations`, :mod:`.operators`), and the aggregations
run whole in ClickHouse (:mod:`.pushdown`)."""
