"""TraceQL for the Tempo API: grammar and AST (:mod:`.parser`), SQL planning of span filters
(:mod:`.planner`), spanset evaluation (:mod:`.spansets`) and metrics (:mod:`.metrics`)."""
