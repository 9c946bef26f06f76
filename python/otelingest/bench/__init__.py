"""Benchmarks of otelingest: ``otelingest bench ingest|native|query`` (extra ``otelingest[bench]``).

The load generator (:mod:`otelingest.bench.loadgen`) is also ``otelingest loadgen``, aimed at any OTLP endpoint.
"""
