"""Put ``TenantId`` at the front of a table's sorting key: migration 0014's ``-- @rekey <table>``.

ClickHouse cannot prepend a column to an existing sorting key (``MODIFY ORDER BY`` only appends
columns added in the same ALTER), so a table is rebuilt while the daemon's writers keep inserting
into it; they are held only for its final pass.

**The measure of "copied".** Each partition's copy is recorded in ``otelingest_rekey_progress``
(under the uuid of the ``_v2`` table) with the names of the old table's active parts it read: the
names are taken just before the copy, and the copy reads exactly those parts
(``has(parts, _part)``). Parts are immutable and a name never comes back (an insert adds a new
part, a merge or mutation replaces parts by one of a new name), so:

- the same names in the old table later: ``_v2`` holds exactly that partition's rows;
- a recorded name gone (merged away, before or during the copy): copied again, whole (row counts
  would not do: ReplacingMergeTree/AggregatingMergeTree merges change them, and a merge of copied
  with new rows hides both);
- all recorded names still there plus others: the others hold exactly the rows inserted since.

**Steps** (``hold`` is the writers' hold, daemon.flags ``insert_hold``; it is up when a rekey
starts, i.e. through the migration's ALTERs, which the writers' blocks need):

1. lower the hold; ``<table>_v2`` is created ``AS <table>`` (columns, codecs, indexes, TTL,
   settings) with the engine clause of ``<table>`` but ``ORDER BY (TenantId, <old key>)``;
2. the bulk copy, newest partition first: each partition whose record differs from its parts is
   dropped from ``_v2`` and copied (deduplication off: the same blocks again are not a replay);
   partitions TTL dropped from the old table are dropped from ``_v2``;
3. ``SYSTEM STOP MERGES`` on the old table: from here its parts only grow; the same pass again,
   still unheld, for the partitions written or merged during the bulk copy (with hourly or daily
   partitions, the last one or two; with monthly rollups, the current month's);
4. **held** (raise the hold: writers start no INSERT; after ``HOLD_GRACE_S`` wait until
   ``system.processes`` shows no INSERT in the database, so none is in flight, views' included:
   a view writes its target in its source's INSERT): append to ``_v2`` only the parts added since
   step 3 (recorded as ``APPENDING`` first, so an interrupted append is copied whole on a re-run,
   never appended twice); ``EXCHANGE TABLES`` (atomic); wait again for INSERTs that had resolved
   the old table before the exchange and append any part they added;
5. lower the hold, drop the old table (nothing writes to it any more); the hold is raised again
   when the rekey returns, until the next rekey lowers it or the migration is recorded.

The hold thus lasts one barrier and the copy of a few seconds' inserts per table, whatever the
table's size. Every table, views' targets too, gets its own final pass under its own hold, so a
row a view wrote into a target during the copy is taken like any other. Without a daemon
(``hold`` None: ``otelingest migrate``, tests) there is nothing to wait for.

Re-running after an interruption at any point resumes: a partition whose record matches is not
copied again; a table whose key already leads with ``TenantId`` is done, and a leftover old ``_v2``
(interrupted between the exchange and the drop) gets the parts appended after its records, then is
dropped. Materialized views name their source and target tables, so they follow the exchange.
Replicated tables (cluster mode) are left as they are: the rebuild would need the copy on every
shard and a new ZooKeeper path (docs/tenancy.md).
"""

from __future__ import annotations

import logging
import re
import time
from string import Template
from typing import Any, Callable

from ..errors import SchemaError, StorageError
from .sqlfiles import fragments

log = logging.getLogger("otelingest.schema")

KEY_COLUMN = "TenantId"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLAUSES_AFTER_ORDER_BY = (" PRIMARY KEY ", " SAMPLE BY ", " TTL ", " SETTINGS ")
HOLD_GRACE_S = 0.1  # from a writer's check of the hold to its INSERT showing in system.processes
BARRIER_POLL_S = 0.05
BARRIER_TIMEOUT_S = 120.0
APPENDING = "<appending>"  # recorded while a partition's new parts are appended (never a part name)


def _sql(name: str, **identifiers: str) -> str:
    return Template(fragments("ops/rekey")[name]).substitute(identifiers)


def new_engine(engine_full: str, sorting_key: str) -> str:
    """``engine_full`` with its ORDER BY replaced by ``(TenantId, <sorting_key>)``.

    Raises:
        SchemaError: no ORDER BY, or a PRIMARY KEY apart from it (both would need the column).
    """
    at = engine_full.find(" ORDER BY ")
    if at < 0 or " PRIMARY KEY " in engine_full:
        raise SchemaError(f"cannot rekey an engine without ORDER BY or with PRIMARY KEY: {engine_full}")
    rest = engine_full[at + len(" ORDER BY "):]
    end = min((i for i in (rest.find(c) for c in _CLAUSES_AFTER_ORDER_BY) if i >= 0), default=len(rest))
    return f"{engine_full[:at]} ORDER BY ({KEY_COLUMN}, {sorting_key}){rest[end:]}"


def _leads_with_tenant(sorting_key: str) -> bool:
    return sorting_key.split(",", 1)[0].strip() == KEY_COLUMN


class Rekey:
    """Rebuilds tables of ``database`` through a clickhouse-connect client (not bound to it)."""

    def __init__(self, client: Any, database: str, hold: Callable[[bool], None] | None = None) -> None:
        """``hold(on)``: the daemon's writers' hold, up when :meth:`run` is called and when it returns;
        ``None`` when no daemon writes (``otelingest migrate``, tests): then nothing is waited for."""
        if not _NAME_RE.match(database):
            raise SchemaError(f"database name {database!r} cannot be rekeyed")
        self.client = client
        self.db = database
        self.hold = hold
        # Tests interrupt the copy here: called before each partition is copied.
        self.before_partition: Callable[[str, str], None] = lambda table, partition: None
        # (table, seconds the hold was up for its final pass, partitions copied again or caught up
        # after the bulk copy: those written meanwhile), per run.
        self.held: list[tuple[str, float, int]] = []

    def _info(self, table: str) -> tuple[str, str, str, str] | None:
        rows = self.client.query(_sql("table_info"), parameters={"db": self.db, "table": table}).result_rows
        return (str(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def _parts(self, table: str) -> dict[str, list[str]]:
        """Active part names of each partition of ``table``."""
        rows = self.client.query(_sql("partitions"), parameters={"db": self.db, "table": table}).result_rows
        return {str(r[0]): list(r[1]) for r in rows}

    def _recorded(self, uuid: str) -> dict[str, list[str]]:
        rows = self.client.query(_sql("copied_partitions", db=self.db), parameters={"uuid": uuid}).result_rows
        return {str(r[0]): list(r[1]) for r in rows}

    def _columns(self, table: str) -> str:
        return ", ".join(f"`{r[0]}`" for r in self.client.query(
            _sql("stored_columns"), parameters={"db": self.db, "table": table}).result_rows)

    def _barrier(self, grace: float = 0.0) -> None:
        """Under the hold: wait until no INSERT is running in the database (none in flight).

        Raises:
            StorageError: INSERTs still running after BARRIER_TIMEOUT_S (retryable: re-run).
        """
        if self.hold is None:
            return
        # A writer that read "no hold" just before it was raised starts its INSERT within this
        # (and should one start later, the catch-up after the exchange copies its rows).
        time.sleep(grace)
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while self.client.query(_sql("inserts_running"), parameters={"db": self.db}).result_rows[0][0]:
            if time.monotonic() > deadline:
                raise StorageError(f"rekey: INSERTs into {self.db} still running after {BARRIER_TIMEOUT_S:g}s "
                                   "under the hold", retryable=True)
            time.sleep(BARRIER_POLL_S)

    def _copy_changed(self, table: str, v2: str, uuid: str, columns: str) -> int:
        """Copy each partition of ``table`` whose parts differ from those recorded at its last copy
        (never copied, rows inserted since, or merged since): dropped from ``v2`` and copied whole.
        Returns how many were copied."""
        ids = dict(db=self.db, table=table, v2=v2)
        recorded = self._recorded(uuid)
        now = self._parts(table)
        for gone in sorted(set(recorded) - set(now)):
            # Dropped from the old table since its copy (TTL): not in the new one either.
            self.client.command(_sql("drop_partial", **ids), parameters={"partition": gone})
        # Newest first: the partitions being written to are copied early, and the rest of the copy
        # is the time in which more rows come; the next pass takes those.
        todo = [p for p in sorted(now, reverse=True) if recorded.get(p) != now[p]]
        log.info("rekey %s: %d of %d partitions to copy", table, len(todo), len(now))
        for p in todo:
            self.before_partition(table, p)
            # The copy reads exactly the parts recorded (those of them still there): parts are
            # immutable and a name never comes back, so finding them all later means the copy read
            # exactly their rows, and the parts added since hold exactly the rows it did not.
            parts = self._parts(table).get(p, [])
            self.client.command(_sql("drop_partial", **ids), parameters={"partition": p})
            self.client.command(_sql("copy_partition", **ids, columns=columns), parameters={"partition": p, "parts": parts})
            self.client.command(_sql("mark_copied", db=self.db), parameters={"uuid": uuid, "partition": p, "parts": parts})
        return len(todo)

    def _copy_new(self, table: str, src: str, dst: str, uuid: str, *, may_recopy: bool) -> int:
        """Under the hold (nothing inserting), merges of ``src`` stopped: bring ``dst`` level with
        ``src``. A partition whose recorded parts are all still there gets only its new parts
        (appended); one merged since is copied whole (``may_recopy``, before the exchange) or, after
        it, logged (the new table takes inserts, so its partition cannot be dropped). Returns how
        many partitions changed."""
        recorded = self._recorded(uuid)
        columns = self._columns(src)
        changed = 0
        for p, parts in sorted(self._parts(src).items()):
            had = recorded.get(p, [])
            if had == parts:
                continue
            changed += 1
            if not set(had) <= set(parts):
                if may_recopy:
                    ids = dict(db=self.db, table=src, v2=dst)
                    self.client.command(_sql("drop_partial", **ids), parameters={"partition": p})
                    self.client.command(_sql("copy_partition", **ids, columns=columns),
                                        parameters={"partition": p, "parts": parts})
                else:
                    # Only when the server restarted between the exchange and the drop (merges ran
                    # again) and an INSERT raced the hold: those rows cannot be told apart.
                    log.warning("rekey %s: partition %s of the old table was merged after its final copy; "
                                "rows inserted into it after that (if any) are not carried over", table, p)
            else:
                # Marked first: a re-run finds no recorded parts matching and copies it whole, so an
                # interrupted append is never appended twice.
                self.client.command(_sql("mark_copied", db=self.db),
                                    parameters={"uuid": uuid, "partition": p, "parts": [APPENDING]})
                self.client.command(_sql("copy_new_parts", db=self.db, src=src, dst=dst, columns=columns),
                                    parameters={"partition": p, "parts": had})
            self.client.command(_sql("mark_copied", db=self.db), parameters={"uuid": uuid, "partition": p, "parts": parts})
        return changed

    def _set_hold(self, on: bool) -> None:
        if self.hold is not None:
            self.hold(on)

    def run(self, table: str) -> bool:
        """Rebuild ``table`` with TenantId leading its key; True when it was rebuilt now."""
        if not _NAME_RE.match(table):
            raise SchemaError(f"table name {table!r} cannot be rekeyed")
        v2 = f"{table}_v2"
        info = self._info(table)
        if info is None:
            raise SchemaError(f"@rekey {table}: no such table in {self.db}")
        uuid, engine, engine_full, sorting_key = info
        if _leads_with_tenant(sorting_key):
            leftover = self._info(v2)
            if leftover is not None and not _leads_with_tenant(leftover[3]):
                # Interrupted between the exchange and the drop: this is the old table.
                self.client.command(_sql("stop_merges", db=self.db, table=v2))
                self._copy_new(table, v2, table, uuid, may_recopy=False)
                self.client.command(_sql("drop_old", db=self.db, v2=v2))
            return False
        if engine.startswith("Replicated"):
            log.warning("%s: a replicated table keeps its sorting key (cluster mode; docs/tenancy.md)", table)
            return False
        if not engine.endswith("MergeTree"):
            raise SchemaError(f"@rekey {table}: engine {engine} is not a MergeTree")
        ids = dict(db=self.db, table=table, v2=v2)
        exchanged = False
        try:
            # Until the final pass writers insert into the old table (the passes below take those).
            self._set_hold(False)
            self.client.command(_sql("create_v2", **ids, engine=new_engine(engine_full, sorting_key)))
            target = self._info(v2)
            assert target is not None
            uuid = target[0]
            self.client.command(_sql("progress_table", db=self.db))
            columns = self._columns(table)
            # The bulk copy.
            self._copy_changed(table, v2, uuid, columns)
            # From here the old table's parts only grow (new inserts), so what the next pass
            # records stays there and the final pass can append just the parts added after it.
            self.client.command(_sql("stop_merges", **ids))
            # Still writing: partitions inserted into or merged during the bulk copy, copied whole.
            again = self._copy_changed(table, v2, uuid, columns)
            self._set_hold(True)
            held_from = time.monotonic()
            self._barrier(HOLD_GRACE_S)
            again += self._copy_new(table, table, v2, uuid, may_recopy=True)
            self.client.command(_sql("exchange", **ids))
            exchanged = True
            # An INSERT that had its table before the exchange may still add a part to the old one.
            self._barrier()
            again += self._copy_new(table, v2, table, uuid, may_recopy=False)
            held = time.monotonic() - held_from
            # Nothing writes to the old table any more: dropping it (long for a large one) unheld.
            self._set_hold(False)
            self.client.command(_sql("drop_old", db=self.db, v2=v2))
            self.held.append((table, held, again))
            log.info("rekey %s: writers held %.2fs for the final pass (%d partitions caught up after the bulk copy)", table, held, again)
        finally:
            self._set_hold(True)
            if not exchanged:
                try:
                    self.client.command(_sql("start_merges", **ids))
                except Exception:  # noqa: BLE001 - best effort; a re-run stops and starts them again
                    log.warning("rekey %s: could not start merges again", table)
        return True
