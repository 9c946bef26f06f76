"""The writers: ring records to rows stored in ClickHouse, each exactly once.

The delivery spec the modules hold to (the whole argument, crash by crash: docs/delivery.md):

1. A record leaves its ring (is released) only once every table of its batch is stored, spilled
   or dead-lettered (:mod:`.service`).
2. A batch's extent in each ring and its random token are in the ledger (:mod:`.ledger`) before
   its first INSERT; every INSERT of it carries ``insert_deduplication_token = <token>-<table>``
   (:mod:`.inserter`).
3. The same records always give byte-identical bodies (:mod:`.batch`), so a writer that starts
   at an index first re-inserts that index's unfinished ledger entries with their recorded tokens,
   and ClickHouse drops what it already has.
4. Retryable failures are retried forever; after ``spill.after_s`` a table goes to the spill
   queue under the same token, and the replayer (:mod:`.replayer`) acknowledges it there only after
   its INSERT. Only a body ClickHouse can never take goes to the dead-letter directory.
"""
