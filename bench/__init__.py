"""Benchmarks of otelingest (run from a source checkout: ``otelingest bench NAME``)."""
