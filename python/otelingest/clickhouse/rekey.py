"""Put ``TenantId`` at the front of a table's sorting key: migration 0014's ``-- @rekey <table>``.

ClickHouse cannot prepend a column to an existing sorting key (``MODIFY ORDER BY`` only appends
columns added in the same ALTER), so a table is rebuilt:

1. ``<table>_v2`` is created ``AS <table>`` (columns, codecs, indexes, TTL, settings) with the engine
   clause of ``<table>`` but ``ORDER BY (TenantId, <old key>)``;
2. each partition is copied once: a partition's copy is recorded in ``otelingest_rekey_progress``
   under the uuid of that ``_v2`` table after its INSERT; a partition not recorded is dropped from
   ``_v2`` first (an interrupted copy leaves part of it) and copied again, deduplication off (the
   same blocks again are not a replay);
3. ``EXCHANGE TABLES`` (atomic), then the old table is dropped.

Re-running after an interruption at any point resumes: a table whose key already leads with
``TenantId`` is done (a leftover old ``_v2`` is dropped). Nothing may write to the table meanwhile:
the daemon's writers hold their inserts until the schema is current (``daemon.flags``
``schema_pending``). Materialized views name their source and target tables, so they follow the
exchange. Replicated tables (cluster mode) are left as they are: the rebuild would need the copy
on every shard and a new ZooKeeper path (docs/tenancy.md).
"""

from __future__ import annotations

import logging
import re
from string import Template
from typing import Any

from ..errors import SchemaError
from .sqlfiles import fragments

log = logging.getLogger("otelingest.schema")

KEY_COLUMN = "TenantId"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLAUSES_AFTER_ORDER_BY = (" PRIMARY KEY ", " SAMPLE BY ", " TTL ", " SETTINGS ")


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

    def __init__(self, client: Any, database: str) -> None:
        if not _NAME_RE.match(database):
            raise SchemaError(f"database name {database!r} cannot be rekeyed")
        self.client = client
        self.db = database
        # Tests interrupt the copy here: called before each partition is copied.
        self.before_partition = lambda table, partition: None

    def _info(self, table: str) -> tuple[str, str, str, str] | None:
        rows = self.client.query(_sql("table_info"), parameters={"db": self.db, "table": table}).result_rows
        return (str(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def run(self, table: str) -> bool:
        """Rebuild ``table`` with TenantId leading its key; True when it was rebuilt now."""
        if not _NAME_RE.match(table):
            raise SchemaError(f"table name {table!r} cannot be rekeyed")
        v2 = f"{table}_v2"
        info = self._info(table)
        if info is None:
            raise SchemaError(f"@rekey {table}: no such table in {self.db}")
        _, engine, engine_full, sorting_key = info
        if _leads_with_tenant(sorting_key):
            leftover = self._info(v2)
            if leftover is not None and not _leads_with_tenant(leftover[3]):
                # Interrupted between the exchange and the drop: this is the old table.
                self.client.command(_sql("drop_old", db=self.db, v2=v2))
            return False
        if engine.startswith("Replicated"):
            log.warning("%s: a replicated table keeps its sorting key (cluster mode; docs/tenancy.md)", table)
            return False
        if not engine.endswith("MergeTree"):
            raise SchemaError(f"@rekey {table}: engine {engine} is not a MergeTree")
        ids = dict(db=self.db, table=table, v2=v2)
        self.client.command(_sql("create_v2", **ids, engine=new_engine(engine_full, sorting_key)))
        target = self._info(v2)
        assert target is not None
        uuid = target[0]
        self.client.command(_sql("progress_table", db=self.db))
        copied = {r[0] for r in self.client.query(_sql("copied_partitions", db=self.db),
                                                  parameters={"uuid": uuid}).result_rows}
        columns = ", ".join(f"`{r[0]}`" for r in self.client.query(
            _sql("stored_columns"), parameters={"db": self.db, "table": table}).result_rows)
        partitions = [r[0] for r in self.client.query(_sql("partitions"), parameters={"db": self.db, "table": table}).result_rows]
        todo = [p for p in partitions if p not in copied]
        log.info("rekey %s: %d of %d partitions to copy", table, len(todo), len(partitions))
        for p in todo:
            self.before_partition(table, p)
            self.client.command(_sql("drop_partial", **ids), parameters={"partition": p})
            self.client.command(_sql("copy_partition", **ids, columns=columns), parameters={"partition": p})
            self.client.command(_sql("mark_copied", db=self.db), parameters={"uuid": uuid, "partition": p})
        self.client.command(_sql("exchange", **ids))
        self.client.command(_sql("drop_old", db=self.db, v2=v2))
        return True
