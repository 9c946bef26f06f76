"""Versioned schema migrations and retention (TTL) reconciliation.

Migrations are ``sql/migrations/NNNN_name.sql`` templates (placeholders documented at the top of
``0001_base.sql``). Applied versions are recorded in ``otelingest_schema_migrations``; a start-up
applies every newer file in order, so a new release upgrades an existing database with its ALTERs.
Besides ``-- @distributed`` (0001's header) a file may hold ``-- @rekey <table>`` (a rebuild,
``rekey.py``) and ``-- @writers-unchanged`` (``Migration.writers_unchanged``: a later file that
does not change what the writers insert lets an earlier file's rebuilds copy while they insert).
After migrating, each table's TTL is compared with ``[retention]`` and changed where it differs
(``sql/retention.sql``), so editing a retention in the config applies to existing tables.

Per-tenant retention (tenancy on, some tenant's ``retention.<key>`` differing from
the default, ``tenancy.defaults.retention`` else ``[retention]``): the raw tables and lookups of that
signal get one TTL rule whose days are the row's tenant's (``sql/retention_tenants.sql``,
``transform(TenantId, tenants, days, default)`` with bound parameters) and
``ttl_only_drop_parts = 0`` (``sql/retention_parts.sql``: a part mixes tenants, so a tenant's
expired rows are deleted in merges rather than waiting for the whole part). The rollups likewise
by their own keys (``metrics_5m``, ``metrics_1h``, ``span_stats``, ``dependencies``). Without such
a tenant the tables keep the plain rule and whole-part drops, as before tenancy. The TTL read back
from ``system.tables`` is parsed, so a start with an unchanged config changes nothing (a MODIFY TTL
rewrites every part's TTL information).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from ..config import Config
from ..errors import SchemaError, StorageError
from .sqlfiles import sql_dir

log = logging.getLogger("otelingest.schema")

MIGRATIONS_TABLE = "otelingest_schema_migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PLACEHOLDER_RE = re.compile(r"\$\{([a-z_]+)(?::([A-Za-z0-9_]+))?\}")
_DISTRIBUTED_RE = re.compile(r"^--\s*@distributed\s+([a-z0-9_]+)\s+(.+?)\s*$")
_REKEY_RE = re.compile(r"^--\s*@rekey\s+([a-z0-9_]+)\s*$")
_WRITERS_UNCHANGED_RE = re.compile(r"^--\s*@writers-unchanged\s*$")
_ENGINE_KINDS = frozenset({"MergeTree", "AggregatingMergeTree", "ReplacingMergeTree", "SummingMergeTree"})
_TTL_DAYS_RE = re.compile(r"toIntervalDay\((\d+)\)")
# The per-tenant rule as ClickHouse stores it: bound arrays appear as _CAST([...], 'Array(...)').
_TTL_TENANTS_RE = re.compile(
    r"transform\(TenantId, (?:_CAST\()?\[(?P<tenants>[^\]]*)\](?:, 'Array\(String\)'\))?, "
    r"(?:_CAST\()?\[(?P<days>[0-9, ]*)\](?:, 'Array\(UInt16\)'\))?, (?:_CAST\()?(?P<default>\d+)")
_QUOTED_RE = re.compile(r"'((?:[^'\\]|\\.)*)'")
_DROP_PARTS_RE = re.compile(r"\bttl_only_drop_parts = (\d)")
# The [retention] keys a tenant may override: its raw tables and lookups, and its rollups.
TENANT_RETENTION_KEYS = ("traces", "logs", "metrics", "metrics_5m", "metrics_1h", "span_stats", "dependencies")
# A series' labels (otel_prom_series: remote-written series, and OTLP ones since 0015) are read
# with the raw points and with the rollups, whose rows carry none: kept as long as the longest of
# them (``${ttl:metric_series}``).
SERIES_KEY = "metric_series"
SERIES_READ_WITH = ("metrics", "metrics_5m", "metrics_1h")
# The dependency job's record of which hours it computed (otel_service_dependency_hours): any
# tenant's record marks an hour done, so one rule, the longest ``dependencies`` days of any tenant
# (``${ttl:dependency_hours}``), or an hour would be computed again and its rows come back.
HOURS_KEY = "dependency_hours"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def writers_unchanged(self) -> bool:
        """``-- @writers-unchanged``: the writers' blocks insert into the schema as it was before this
        migration as well as after it (no column they write is added, renamed or retyped)."""
        return any(_WRITERS_UNCHANGED_RE.match(line.strip()) for line in self.text.splitlines())


def lift_from(pending: list[Migration]) -> int:
    """The lowest version whose table rebuilds may let the writers insert during their copy: the
    last pending migration the writers' blocks need (later ones leave what the writers insert as
    it is), so a rebuild never lowers the hold before the writers' schema is complete."""
    needed = [m.version for m in pending if not m.writers_unchanged]
    return max(needed) if needed else max((m.version for m in pending), default=0)


@dataclass(frozen=True)
class Ttl:
    """A table's retention: ``days``, except the ``tenants`` listed with their own (sorted; empty
    = one rule for every row, whole parts dropped)."""

    days: int
    tenants: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RenderContext:
    database: str
    cluster: str | None
    # [retention] days by key, and SERIES_KEY's and HOURS_KEY's; with tenancy on, tenancy.defaults.retention's where
    # set (the days of every tenant not in tenant_days).
    retention: dict[str, int] = field(default_factory=dict)
    # Key -> (tenant, days) of the tenants whose retention differs from ``retention[key]``, sorted.
    tenant_days: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> "RenderContext":
        retention: dict[str, int] = msgspec.to_builtins(cfg.retention)
        tenant_days: dict[str, tuple[tuple[str, int], ...]] = {}
        ten = cfg.tenancy
        if ten.enabled:  # off: every row is 'default', retention exactly as before tenancy
            for key in TENANT_RETENTION_KEYS:
                default = getattr(ten.defaults.retention, key)
                if default:
                    retention[key] = default
                own = ((t, getattr(ten.limits(t).retention, key)) for t in ten.tenants)
                tenant_days[key] = tuple(sorted((t, d) for t, d in own if d and d != retention[key]))
        return cls(cfg.clickhouse.database, cfg.clickhouse.cluster, retention, tenant_days)

    def __post_init__(self) -> None:
        if SERIES_KEY in self.retention or not all(k in self.retention for k in (*SERIES_READ_WITH, "dependencies")):
            return
        retention = {**self.retention, SERIES_KEY: max(self.retention[k] for k in SERIES_READ_WITH),
                     HOURS_KEY: max([self.retention["dependencies"]]
                                    + [d for _, d in self.tenant_days.get("dependencies", ())])}
        own = {k: dict(self.tenant_days.get(k, ())) for k in SERIES_READ_WITH}
        longest = {t: max(own[k].get(t, retention[k]) for k in SERIES_READ_WITH) for t in set().union(*own.values())}
        tenant_days = {**self.tenant_days, SERIES_KEY: tuple(sorted(
            (t, d) for t, d in longest.items() if d != retention[SERIES_KEY]))}
        object.__setattr__(self, "retention", retention)  # frozen: derived once, at construction
        object.__setattr__(self, "tenant_days", tenant_days)

    def ttl(self, key: str) -> Ttl:
        return Ttl(int(self.retention[key]), self.tenant_days.get(key, ()))


@dataclass(frozen=True)
class Statement:
    sql: str
    table: str | None  # the first ${table:...} named, i.e. the one created or altered
    ttl_key: str | None
    # `-- @rekey <table>`: not SQL but a rebuild the Migrator runs (clickhouse/rekey.py); sql is "".
    rekey: bool = False


def available_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir() / "migrations"
    out = []
    for p in sorted(directory.iterdir()):
        m = _FILE_RE.match(p.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), p.read_text()))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise SchemaError(f"duplicate migration versions in {directory}")
    return out


def latest_version() -> int:
    return max(m.version for m in available_migrations())


def render(text: str, ctx: RenderContext) -> list[Statement]:
    """Render a template into statements, adding Distributed tables in cluster mode."""
    statements: list[Statement] = []
    buf: list[str] = []
    for line in text.splitlines():
        r = _REKEY_RE.match(line.strip())
        if r:
            # Single node only: a cluster's tables keep their key (rekey.py's module doc).
            if not ctx.cluster:
                statements.append(Statement("", r.group(1), None, rekey=True))
            continue
        d = _DISTRIBUTED_RE.match(line.strip())
        if d:
            if ctx.cluster:
                name, key = d.group(1), d.group(2)
                statements.append(Statement(
                    f"CREATE TABLE IF NOT EXISTS {ctx.database}.{name} ON CLUSTER '{ctx.cluster}' "
                    f"AS {ctx.database}.{name}_local "
                    f"ENGINE = Distributed('{ctx.cluster}', '{ctx.database}', '{name}_local', {key})",
                    name, None,
                ))
            continue
        is_comment = line.lstrip().startswith("--")
        if not buf and (is_comment or not line.strip()):
            continue
        buf.append(line)
        if not is_comment and line.rstrip().endswith(";"):
            statements.append(_render_statement("\n".join(buf).rstrip().rstrip(";"), ctx))
            buf = []
    if "".join(buf).strip():
        raise SchemaError("migration ends without ';' after its last statement")
    return statements


def _render_statement(sql: str, ctx: RenderContext) -> Statement:
    first_table: list[str] = []
    ttl_key: list[str] = []
    for m in _PLACEHOLDER_RE.finditer(sql):
        if m.group(1) == "table" and not first_table:
            first_table.append(m.group(2))
        if m.group(1) == "ttl":
            ttl_key.append(m.group(2))
    table = first_table[0] if first_table else None

    def sub(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "db" and arg is None:
            return ctx.database
        if kind == "on_cluster" and arg is None:
            return f"ON CLUSTER '{ctx.cluster}'" if ctx.cluster else ""
        if kind == "table" and arg:
            return f"{ctx.database}.{arg}_local" if ctx.cluster else f"{ctx.database}.{arg}"
        if kind == "engine" and arg in _ENGINE_KINDS:
            if not ctx.cluster:
                return arg
            if table is None:
                raise SchemaError(f"${{engine:{arg}}} outside a CREATE TABLE ${{table:...}} statement")
            return f"Replicated{arg}('/clickhouse/tables/{{shard}}/{ctx.database}/{table}_local', '{{replica}}')"
        if kind == "ttl" and arg in ctx.retention:
            return str(int(ctx.retention[arg]))
        raise SchemaError(f"unknown placeholder {m.group(0)}")

    return Statement(_PLACEHOLDER_RE.sub(sub, sql), table, ttl_key[0] if ttl_key else None)


def bootstrap_statements(ctx: RenderContext) -> list[Statement]:
    return render((sql_dir() / "bootstrap.sql").read_text(), ctx)


def retention_statements(ctx: RenderContext, name: str = "retention") -> list[Statement]:
    """``sql/<name>.sql``: ``retention`` (one rule), ``retention_tenants`` or ``retention_parts``."""
    return render((sql_dir() / f"{name}.sql").read_text(), ctx)


def parse_ttl(engine_full: str) -> tuple[Ttl | None, bool]:
    """(the retention of a table's TTL, whether it drops only whole parts) from its
    ``system.tables.engine_full``; None when there is no TTL or it is not one of ours. Tenant ids
    hold no space, bracket or backslash (config.tenant_id_problem), so the patterns cannot be fooled."""
    head, _, settings = engine_full.partition(" SETTINGS ")
    drop = _DROP_PARTS_RE.search(settings)
    only_drop_parts = drop is None or drop.group(1) == "1"
    if " TTL " not in head:
        return None, only_drop_parts
    rule = head.split(" TTL ", 1)[1]
    m = _TTL_TENANTS_RE.search(rule)
    if m:
        tenants = [t.replace("\\'", "'") for t in _QUOTED_RE.findall(m.group("tenants"))]
        days = [int(d) for d in m.group("days").replace(" ", "").split(",") if d]
        if len(tenants) != len(days):
            return None, only_drop_parts
        return Ttl(int(m.group("default")), tuple(sorted(zip(tenants, days)))), only_drop_parts
    d = _TTL_DAYS_RE.search(rule)
    return (Ttl(int(d.group(1))) if d else None), only_drop_parts


class Migrator:
    """Applies migrations and retention to one database through a clickhouse-connect client.

    The client must not be bound to the target database (it may not exist yet).
    """

    def __init__(self, client: Any, ctx: RenderContext, hold: Callable[[bool], None] | None = None) -> None:
        """``hold(on)`` raises or lowers the daemon's writers' hold (``None``: no daemon writes)."""
        self.client = client
        self.ctx = ctx
        self.hold = hold
        # Tests interrupt a table rebuild here (rekey.Rekey.before_partition).
        self.before_partition: Any = lambda table, partition: None
        # Each rekey: (table, seconds the hold was up, partitions caught up after the bulk copy).
        self.held: list[tuple[str, float, int]] = []

    def _run(self, stmt: Statement, *, may_lift: bool = False, params: dict[str, Any] | None = None) -> None:
        try:
            if stmt.rekey:
                from .rekey import Rekey

                # Writers may insert during the copy only once every statement they need has run:
                # the rekeys of the last migration to apply (the ALTERs before them are done).
                rekey = Rekey(self.client, self.ctx.database, hold=self.hold if may_lift else None)
                rekey.before_partition = self.before_partition
                rekey.held = self.held
                if rekey.run(stmt.table or ""):
                    log.info("%s rebuilt with TenantId leading its sorting key", stmt.table)
                return
            self.client.command(stmt.sql, parameters=params) if params else self.client.command(stmt.sql)
        except SchemaError:
            raise
        except Exception as e:
            from .client import as_storage_error

            err = as_storage_error(e)
            if err.retryable:
                raise err from e
            raise SchemaError(f"{err} -- in statement: {stmt.sql[:200] or '@rekey ' + str(stmt.table)}") from e

    def applied(self) -> dict[int, str]:
        rows = self.client.query(
            f"SELECT version, argMax(checksum, applied_at) FROM {self.ctx.database}.{MIGRATIONS_TABLE} GROUP BY version"
        ).result_rows
        return {int(v): str(c) for v, c in rows}

    def current_version(self) -> int:
        """The highest applied version, 0 for an empty database."""
        exists = self.client.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String}",
            parameters={"db": self.ctx.database, "name": MIGRATIONS_TABLE},
        ).result_rows[0][0]
        if not exists:
            return 0
        return max(self.applied(), default=0)

    def migrate(self, target: int | None = None) -> list[int]:
        """Apply every migration above the current version up to ``target``; returns those applied."""
        for stmt in bootstrap_statements(self.ctx):
            self._run(stmt)
        done = self.applied()
        applied_now = []
        first_lift = lift_from([m for m in available_migrations()
                                if m.version not in done and (target is None or m.version <= target)])
        for mig in available_migrations():
            if target is not None and mig.version > target:
                break
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    log.warning("migration %04d_%s changed since it was applied; not re-run", mig.version, mig.name)
                continue
            log.info("applying migration %04d_%s", mig.version, mig.name)
            try:
                for stmt in render(mig.text, self.ctx):
                    self._run(stmt, may_lift=mig.version >= first_lift)
            except SchemaError as e:
                raise SchemaError(f"migration {mig.version:04d}_{mig.name}: {e}") from e
            self.client.insert(
                f"{self.ctx.database}.{MIGRATIONS_TABLE}",
                [[mig.version, mig.name, mig.checksum]],
                column_names=["version", "name", "checksum"],
            )
            applied_now.append(mig.version)
        return applied_now

    def table_ttl(self, table: str) -> tuple[Ttl | None, bool]:
        """``parse_ttl`` of the table as it is; (None, True) when it does not exist."""
        name = f"{table}_local" if self.ctx.cluster else table
        rows = self.client.query(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {name:String}",
            parameters={"db": self.ctx.database, "name": name},
        ).result_rows
        if not rows:
            return None, True
        return parse_ttl(rows[0][0])

    def table_ttl_days(self, table: str) -> int | None:
        ttl = self.table_ttl(table)[0]
        return ttl.days if ttl else None

    def apply_retention(self) -> list[str]:
        """Change the TTL of every table whose retention differs from the config; returns them."""
        per_tenant = {s.table: s for s in retention_statements(self.ctx, "retention_tenants")}
        parts = {s.table: s for s in retention_statements(self.ctx, "retention_parts")}
        changed = []
        for stmt in retention_statements(self.ctx):
            table, key = stmt.table, stmt.ttl_key
            if table is None or key is None:
                raise SchemaError("retention.sql: each statement must name a ${table:...} and a ${ttl:...}")
            want = self.ctx.ttl(key)
            if want.tenants and table not in per_tenant:
                raise SchemaError(f"retention_tenants.sql: no statement for {table}")
            have, only_drop_parts = self.table_ttl(table)
            if have is None or (have == want and only_drop_parts == (not want.tenants or table not in parts)):
                continue
            log.info("retention of %s: %s -> %s", table, _describe_ttl(have), _describe_ttl(want))
            if want.tenants:
                # Rows-level deletes first, so the new rule never waits for whole parts.
                self._run(parts[table], params={"only_drop_parts": 0})
                self._run(per_tenant[table], params={
                    "tenants": [t for t, _ in want.tenants], "days": [d for _, d in want.tenants],
                    "default_days": want.days})
            else:
                self._run(stmt)
                if table in parts:
                    self._run(parts[table], params={"only_drop_parts": 1})
            changed.append(table)
        return changed


def _describe_ttl(ttl: Ttl) -> str:
    if not ttl.tenants:
        return f"{ttl.days} days"
    return f"{ttl.days} days, " + ", ".join(f"{t} {d}" for t, d in ttl.tenants[:5]) + (" ..." if len(ttl.tenants) > 5 else "")


def migrate(cfg: Config, *, target: int | None = None,
            hold: Callable[[bool], None] | None = None) -> tuple[list[int], list[str]]:
    """Connect, apply migrations and retention. Returns (versions applied, tables whose TTL changed).

    ``hold``: the daemon's writers' hold (up when called; a rekey lowers it for its bulk copy).

    Raises:
        StorageError: ClickHouse unreachable (retryable) or refused.
        SchemaError: a migration failed.
    """
    from .client import connect

    client = connect(cfg.clickhouse, with_database=False)
    try:
        m = Migrator(client, RenderContext.from_config(cfg), hold=hold)
        applied = m.migrate(target)
        changed = m.apply_retention()
        return applied, changed
    finally:
        client.close()


def is_current(client: Any, cfg: Config) -> bool:
    """True when the database holds every migration this release ships."""
    try:
        return Migrator(client, RenderContext.from_config(cfg)).current_version() >= latest_version()
    except (StorageError, SchemaError):
        return False


__all__ = [
    "Migration", "Migrator", "RenderContext", "Statement", "Ttl", "parse_ttl",
    "available_migrations", "latest_version", "migrate", "render", "is_current",
]
