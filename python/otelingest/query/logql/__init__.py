"""LogQL for the Loki API: grammar, AST and the SQL filter each stream selector and line filter
compile to (:mod:`.parser`); the Loki API (apis/loki.py) evaluates metric queries over them."""

from .parser import compile_filter, parse

__all__ = ["compile_filter", "parse"]
