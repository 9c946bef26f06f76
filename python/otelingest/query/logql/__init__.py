"""LogQL for the Loki API: grammar, AST and the SQL filter each stream selector and line filter
compile to (:mod:`.parser`), and metric queries evaluated per step (:mod:`.evaluator`)."""

from .parser import compile_filter, parse

__all__ = ["compile_filter", "parse"]
