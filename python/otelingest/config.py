"""Typed configuration, decoded and validated once.

Sources, later wins: built-in defaults, the TOML file, ``OTELINGEST_<SECTION>_<KEY>`` environment
variables, then CLI flags. Any error stops start-up with one line naming the key, the value and what
is allowed (:class:`~otelingest.errors.ConfigError`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from .errors import ConfigError

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Days = Annotated[int, Meta(ge=1, le=36500)]
Identifier = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]

MIB = 1024 * 1024

# Defaults from the design.
DEFAULT_SPILL_AFTER_S = 2.0
DEFAULT_GRPC_PORT = 4317
DEFAULT_HTTP_PORT = 4318
DEFAULT_QUERY_PORT = 8080
DEFAULT_METRICS_PORT = 8888
DEFAULT_CLICKHOUSE_HTTP_PORT = 18123
DEFAULT_CLICKHOUSE_TCP_PORT = 19000
# 50,000 costs ClickHouse less CPU and fewer parts to merge per span than 10,000; a memory-capped
# server gets smaller batches (ingest/writer/sizing.py, docs/benchmarks.md).
DEFAULT_BATCH_MAX_ITEMS = 50_000
DEFAULT_BATCH_TIMEOUT_S = 10.0
DEFAULT_INSERT_WORKERS = 4
DEFAULT_MEMORY_HARD_LIMIT_MIB = 2048
# A batch holds its records in the rings until stored, so the rings must hold a batch's worth of
# records plus what arrives while it is inserted: 64 MiB each was sized for 10,000-item batches.
AUTO_RING_MIN_MIB = 64
# Soft limit = hard limit minus a spike allowance, as the Collector's memory limiter does.
DEFAULT_SPIKE_PERCENT = 20
DEFAULT_CLICKHOUSE_MIN_FREE_DISK_MIB = 1024
# ClickHouse's own background_pool_size; chdb-core's 2 lets merges fall behind (docs/benchmarks.md).
DEFAULT_EMBEDDED_MERGE_THREADS = 16
# At least the half of the ClickHouse floor the embedded server keeps free (see _check).
DEFAULT_SPILL_MIN_FREE_DISK_MIB = 1024
DEFAULT_QUERY_CACHE_TTL_S = 900.0
# Results whose window ends within this many seconds of now may still change: cached briefly only.
DEFAULT_QUERY_RECENT_WINDOW_S = 300
DEFAULT_QUERY_RECENT_CACHE_TTL_S = 10
DEFAULT_QUERY_CACHE_MAX_ENTRIES = 1024
DEFAULT_QUERY_MAX_LIMIT = 10_000
DEFAULT_QUERY_MAX_RANGE_DAYS = 400
DEFAULT_QUERY_MAX_POINTS = 11_000


class Section(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for config sections: unknown keys are an error, not silently ignored."""


class ReceiverConfig(Section):
    host: str = "0.0.0.0"
    grpc_port: Port = DEFAULT_GRPC_PORT
    http_port: Port = DEFAULT_HTTP_PORT
    # Receiver worker processes; 0 means one per CPU.
    workers: NonNegativeInt = 0
    max_request_bytes: PositiveInt = 16 * MIB
    max_decompressed_bytes: PositiveInt = 64 * MIB
    max_attributes_per_item: PositiveInt = 1024
    max_concurrent_requests: PositiveInt = 256
    # Seconds a client may take to send a whole request body.
    request_timeout_s: PositiveFloat = 30.0
    retry_after_s: PositiveInt = 5


class WriterConfig(Section):
    # Writer processes, each draining its own rings.
    workers: PositiveInt = 1
    batch_max_items: PositiveInt = DEFAULT_BATCH_MAX_ITEMS
    batch_timeout_s: PositiveFloat = DEFAULT_BATCH_TIMEOUT_S
    # Concurrent INSERTs per writer.
    insert_workers: PositiveInt = DEFAULT_INSERT_WORKERS
    retry_initial_s: PositiveFloat = 0.5
    retry_max_s: PositiveFloat = 30.0
    # Shared-memory ring size per receiver->writer pair; 0 = the rings share a quarter of
    # memory.hard_limit_mib, at least AUTO_RING_MIN_MIB each (resolved by load()).
    ring_mib: NonNegativeInt = 0
    # On stop, how long a writer keeps trying to store what it holds (ClickHouse down); past it the
    # records stay in the rings and the ledger, and the next start stores them.
    stop_timeout_s: PositiveFloat = 60.0


class MemoryConfig(Section):
    # Above the soft limit receivers refuse (429/RESOURCE_EXHAUSTED); above the hard limit writers
    # stop taking from the rings. Soft defaults to hard minus spike_percent.
    hard_limit_mib: PositiveInt = DEFAULT_MEMORY_HARD_LIMIT_MIB
    soft_limit_mib: NonNegativeInt = 0
    spike_percent: Annotated[int, Meta(ge=0, le=90)] = DEFAULT_SPIKE_PERCENT
    check_interval_s: PositiveFloat = 0.25
    # Private RSS of all workers together above which receivers refuse; 0 = hard_limit_mib. The
    # data limits above count bytes held in rings and batches; this one the interpreters' heaps.
    rss_limit_mib: NonNegativeInt = 0

    @property
    def effective_soft_limit_mib(self) -> int:
        if self.soft_limit_mib:
            return self.soft_limit_mib
        return self.hard_limit_mib * (100 - self.spike_percent) // 100


class SpillConfig(Section):
    # On-disk queue for batches ClickHouse cannot take yet; the budget is split evenly between the
    # writers (each has its own queue). Above it the writers keep retrying and receivers refuse.
    disk_budget_mib: PositiveInt = 4096
    fsync: Literal["always", "batch", "never"] = "batch"
    # How long a table's INSERT keeps failing (retryable errors) before its batch goes to disk;
    # 0 = at the first failure.
    after_s: NonNegativeFloat = DEFAULT_SPILL_AFTER_S
    # The spill never takes its filesystem below this much free space (less what ClickHouse has
    # reserved there for inserts and merges in flight), so it cannot starve ClickHouse into ENOSPC.
    min_free_disk_mib: NonNegativeInt = DEFAULT_SPILL_MIN_FREE_DISK_MIB


class ClickHouseConfig(Section):
    # Absent: run the embedded server (chdb-core) under the supervisor.
    url: str | None = None
    user: str = "default"
    password: str | None = None
    password_file: str | None = None
    database: Identifier = "otel"
    cluster: Identifier | None = None
    # Read-only user for the query service, when configured.
    read_only_user: str | None = None
    read_only_password: str | None = None
    read_only_password_file: str | None = None
    pool_min: PositiveInt = 5
    pool_max: PositiveInt = 50
    connect_timeout_s: PositiveFloat = 5.0
    query_timeout_s: PositiveFloat = 30.0
    compression: Literal["lz4", "zstd", "none"] = "lz4"
    embedded_http_port: Port = DEFAULT_CLICKHOUSE_HTTP_PORT
    embedded_tcp_port: Port = DEFAULT_CLICKHOUSE_TCP_PORT
    # Memory cap of the embedded server; 0 leaves ClickHouse's own default (90% of RAM).
    embedded_max_memory_mib: NonNegativeInt = 0
    # Background merge threads of the embedded server (its background_pool_size).
    embedded_merge_threads: PositiveInt = DEFAULT_EMBEDDED_MERGE_THREADS
    # Below this much unreserved free space on ClickHouse's disks the receivers refuse (503 /
    # UNAVAILABLE, Retry-After) and /ready says why; the embedded server keeps half of it free
    # itself (keep_free_space_bytes), so what is already acknowledged still fits. 0 disables.
    min_free_disk_mib: NonNegativeInt = DEFAULT_CLICKHOUSE_MIN_FREE_DISK_MIB

    @property
    def embedded(self) -> bool:
        return self.url is None

    def resolved_password(self) -> str:
        return _secret(self.password, self.password_file, "clickhouse.password_file")

    def resolved_read_only_password(self) -> str:
        return _secret(self.read_only_password, self.read_only_password_file, "clickhouse.read_only_password_file")


class RetentionConfig(Section):
    traces: Days = 30
    logs: Days = 30
    metrics: Days = 30
    metrics_5m: Days = 90
    metrics_1h: Days = 365
    span_stats: Days = 365
    dependencies: Days = 365


class QueryConfig(Section):
    host: str = "0.0.0.0"
    port: Port = DEFAULT_QUERY_PORT
    cache_ttl_s: NonNegativeInt = int(DEFAULT_QUERY_CACHE_TTL_S)
    max_rows: PositiveInt = 1_000_000
    timeout_s: PositiveFloat = 30.0
    # Bytes a single ClickHouse query may return before it fails (max_result_bytes).
    max_result_bytes: PositiveInt = 256 * MIB
    recent_window_s: NonNegativeInt = DEFAULT_QUERY_RECENT_WINDOW_S
    recent_cache_ttl_s: NonNegativeInt = DEFAULT_QUERY_RECENT_CACHE_TTL_S
    cache_max_entries: PositiveInt = DEFAULT_QUERY_CACHE_MAX_ENTRIES
    # Largest `limit` a client may ask for (traces, log lines); larger is a 400.
    max_limit: PositiveInt = DEFAULT_QUERY_MAX_LIMIT
    # Longest time window a query may span.
    max_range_days: PositiveInt = DEFAULT_QUERY_MAX_RANGE_DAYS
    # Most steps a range query may evaluate (Prometheus refuses above 11,000 too).
    max_points: PositiveInt = DEFAULT_QUERY_MAX_POINTS
    # Seconds between runs of the service-dependency rollup (last closed hours into
    # otel_service_dependencies_1h), run by the supervisor with the writing user; 0 disables.
    dependencies_rollup_interval_s: NonNegativeInt = 300
    # Hours without a final computation (job not running then, bulk load) each run of that job
    # computes, newest first; bounded so that catching up never hogs ClickHouse. 0 disables.
    dependencies_backfill_hours: NonNegativeInt = 6


class MetricsConfig(Section):
    host: str = "0.0.0.0"
    port: Port = DEFAULT_METRICS_PORT


class SupervisorConfig(Section):
    # A worker whose heartbeat is older than this is hung: killed and replaced at the same index.
    heartbeat_timeout_s: PositiveFloat = 30.0
    # Until its first heartbeat a new worker may take this long to boot (imports, binding, attaching
    # rings), so a slow start on a loaded host is not mistaken for a hang.
    boot_timeout_s: PositiveFloat = 60.0


class LogConfig(Section):
    format: Literal["logfmt", "json"] = "logfmt"
    level: Literal["debug", "info", "warning", "error"] = "info"


class AuthConfig(Section):
    """Credentials accepted on the OTLP receivers and on the query API; none configured = open.

    Bearer tokens and basic-auth ``user:password`` pairs, inline or one per line in a file
    (files keep secrets out of the config and the environment). Compared in constant time.
    """

    receiver_bearer_tokens: list[str] = msgspec.field(default_factory=list)
    receiver_bearer_tokens_file: str | None = None
    receiver_basic_users: list[str] = msgspec.field(default_factory=list)
    receiver_basic_users_file: str | None = None
    query_bearer_tokens: list[str] = msgspec.field(default_factory=list)
    query_bearer_tokens_file: str | None = None
    query_basic_users: list[str] = msgspec.field(default_factory=list)
    query_basic_users_file: str | None = None


class TlsConfig(Section):
    """TLS certificate and key (PEM files) for the OTLP receivers and the query API."""

    receiver_cert_file: str | None = None
    receiver_key_file: str | None = None
    query_cert_file: str | None = None
    query_key_file: str | None = None


# Tenant ids, the rules of Grafana Mimir, Loki and Tempo (so a gateway configured for them works
# unchanged): 1-150 bytes of these characters, not "." or "..". One rule for config and requests.
TENANT_ID_MAX_BYTES = 150
_TENANT_ID_RE = re.compile(r"[A-Za-z0-9!_.*'()-]{1,150}")
DEFAULT_TENANT = "default"
DEFAULT_MAX_METRIC_TENANTS = 100


def tenant_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid tenant id, or None when it is one."""
    if "|" in value:
        return "one tenant per request (a|b is not allowed)"
    if not _TENANT_ID_RE.fullmatch(value):
        return f"1-{TENANT_ID_MAX_BYTES} characters of A-Z a-z 0-9 ! _ . * ' ( ) -"
    if value in (".", ".."):
        return "'.' and '..' are not tenant ids"
    return None


class TenantRetention(Section):
    """Days a tenant's rows are kept, raw and rolled up; unset = the global [retention]."""

    traces: Days | None = None
    logs: Days | None = None
    metrics: Days | None = None
    metrics_5m: Days | None = None
    metrics_1h: Days | None = None
    span_stats: Days | None = None
    dependencies: Days | None = None


class TenantLimits(Section):
    """Per-tenant limits; in [tenancy.tenants.<id>] an unset key takes [tenancy.defaults]'s value,
    and there an unset (or 0) key means no limit."""

    # Ingest token bucket: items (spans, log records, data points, samples) per second, and the
    # bucket's size; burst unset = one second of rate.
    rate: NonNegativeFloat | None = None
    burst: NonNegativeInt | None = None
    max_series_per_metric: NonNegativeInt | None = None
    max_query_concurrency: NonNegativeInt | None = None
    max_query_range_days: NonNegativeInt | None = None
    max_query_points: NonNegativeInt | None = None
    retention: TenantRetention = msgspec.field(default_factory=TenantRetention)


class TenancyConfig(Section):
    """Who a request's tenant is (docs/tenancy.md): ``off`` (every row is tenant ``default``),
    ``header`` (X-Scope-OrgID, behind a trusted gateway) or ``credential`` (the [auth] credential's
    tenant, from ``credentials``: basic-auth user name -> tenant id)."""

    mode: Literal["off", "header", "credential"] = "off"
    defaults: TenantLimits = msgspec.field(default_factory=TenantLimits)
    tenants: dict[str, TenantLimits] = msgspec.field(default_factory=dict)
    credentials: dict[str, str] = msgspec.field(default_factory=dict)
    # Self-metrics carry a tenant label for at most this many tenants; the others are "other".
    max_metric_tenants: PositiveInt = DEFAULT_MAX_METRIC_TENANTS

    @property
    def enabled(self) -> bool:
        """Tenancy is on (``header`` or ``credential``): rows carry the request's tenant, limits apply."""
        return self.mode != "off"

    def limits(self, tenant: str) -> TenantLimits:
        """The effective limits of ``tenant``: its own keys, else the defaults'."""
        own = self.tenants.get(tenant)
        if own is None:
            return self.defaults
        d = self.defaults
        pick = lambda a, b: a if a is not None else b  # noqa: E731
        return TenantLimits(
            rate=pick(own.rate, d.rate), burst=pick(own.burst, d.burst),
            max_series_per_metric=pick(own.max_series_per_metric, d.max_series_per_metric),
            max_query_concurrency=pick(own.max_query_concurrency, d.max_query_concurrency),
            max_query_range_days=pick(own.max_query_range_days, d.max_query_range_days),
            max_query_points=pick(own.max_query_points, d.max_query_points),
            retention=TenantRetention(**{
                key: pick(getattr(own.retention, key), getattr(d.retention, key))
                for key in TenantRetention.__struct_fields__}),
        )


class Config(Section):
    data_dir: str = "./data"
    receiver: ReceiverConfig = msgspec.field(default_factory=ReceiverConfig)
    writer: WriterConfig = msgspec.field(default_factory=WriterConfig)
    memory: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    spill: SpillConfig = msgspec.field(default_factory=SpillConfig)
    clickhouse: ClickHouseConfig = msgspec.field(default_factory=ClickHouseConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    query: QueryConfig = msgspec.field(default_factory=QueryConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    tls: TlsConfig = msgspec.field(default_factory=TlsConfig)
    tenancy: TenancyConfig = msgspec.field(default_factory=TenancyConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    def receiver_workers(self) -> int:
        return self.receiver.workers or (os.cpu_count() or 1)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def keep_restart_only(old: Config, new: Config) -> Config:
    """``new`` (a reloaded config) with what only a restart can change kept from ``old``: ports,
    worker counts, ring size, data_dir, [clickhouse], [query], [metrics] and tenancy.mode."""
    replace = msgspec.structs.replace
    kept = replace(
        new, data_dir=old.data_dir, clickhouse=old.clickhouse, query=old.query, metrics=old.metrics,
        receiver=replace(new.receiver, host=old.receiver.host, grpc_port=old.receiver.grpc_port,
                         http_port=old.receiver.http_port, workers=old.receiver.workers),
        writer=replace(new.writer, workers=old.writer.workers, ring_mib=old.writer.ring_mib),
        # Rows already written carry their tenant: switching who the tenant is needs a restart.
        tenancy=replace(new.tenancy, mode=old.tenancy.mode),
    )
    return kept


def _secret(value: str | None, path: str | None, key: str) -> str:
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{key} = {path!r}: cannot read the file ({e.strerror})") from None
    return value or ""


def _section_types() -> dict[str, type[Section]]:
    info = msgspec.structs.fields(Config)
    out: dict[str, type[Section]] = {}
    for f in info:
        if isinstance(f.type, type) and issubclass(f.type, Section):
            out[f.name] = f.type
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``OTELINGEST_<SECTION>_<KEY>`` (and ``OTELINGEST_DATA_DIR``) as raw strings."""
    out: dict[str, Any] = {}
    if "OTELINGEST_DATA_DIR" in environ:
        out["data_dir"] = environ["OTELINGEST_DATA_DIR"]
    for section, typ in _section_types().items():
        for f in msgspec.structs.fields(typ):
            name = f"OTELINGEST_{section}_{f.name}".upper()
            if name in environ:
                value: Any = environ[name]
                if getattr(f.type, "__origin__", None) is list:
                    value = [v.strip() for v in value.split(",") if v.strip()]
                out.setdefault(section, {})[f.name] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _lookup(data: dict[str, Any], path: list[str]) -> Any:
    cur: Any = data
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


_PATH_RE = re.compile(r"at `\$((?:\.[A-Za-z0-9_]+)*)`")


def _describe(err: msgspec.ValidationError, data: dict[str, Any]) -> str:
    msg = str(err)
    m = _PATH_RE.search(msg)
    path = [p for p in m.group(1).split(".") if p] if m else []
    reason = _PATH_RE.sub("", msg).rstrip(" -")
    if reason.startswith("Object contains unknown field"):
        field = reason.split("`")[1]
        where = ".".join(path)
        allowed = _allowed_keys(path)
        return f"{where + '.' if where else ''}{field}: unknown key; allowed: {', '.join(allowed)}"
    key = ".".join(path) or "<config>"
    value = _lookup(data, path)
    return f"{key} = {value!r}: {reason[0].lower() + reason[1:] if reason else 'invalid'}"


def _allowed_keys(path: list[str]) -> list[str]:
    typ: Any = Config
    for p in path:
        typ = {f.name: f.type for f in msgspec.structs.fields(typ)}.get(p)
        if typ is None:
            return []
    return [f.name for f in msgspec.structs.fields(typ)]


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load and validate the effective configuration.

    Raises:
        ConfigError: one line naming the key, the value and what is allowed.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r}: not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {str(path)!r}: invalid TOML ({e})") from None
    data = _merge(data, _env_overrides(dict(os.environ if environ is None else environ)))
    data = _merge(data, overrides or {})
    try:
        # strict=False: environment variables and flags arrive as text ("4317", "true").
        cfg = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(_describe(e, data)) from None
    _check(cfg)
    if not cfg.writer.ring_mib:
        rings = cfg.receiver_workers() * cfg.writer.workers
        cfg.writer.ring_mib = max(AUTO_RING_MIN_MIB, cfg.memory.hard_limit_mib // 4 // rings)
    return cfg


def _check(cfg: Config) -> None:
    mem = cfg.memory
    if mem.soft_limit_mib and mem.soft_limit_mib >= mem.hard_limit_mib:
        raise ConfigError(
            f"memory.soft_limit_mib = {mem.soft_limit_mib}: must be below memory.hard_limit_mib ({mem.hard_limit_mib})"
        )
    ch = cfg.clickhouse
    if ch.pool_min > ch.pool_max:
        raise ConfigError(f"clickhouse.pool_min = {ch.pool_min}: must not exceed clickhouse.pool_max ({ch.pool_max})")
    if ch.url is not None and not re.match(r"^https?://[^/\s]+", ch.url):
        raise ConfigError(f"clickhouse.url = {ch.url!r}: expected http://host:port or https://host:port")
    if ch.cluster and ch.embedded:
        raise ConfigError(f"clickhouse.cluster = {ch.cluster!r}: a cluster needs clickhouse.url (the embedded server is one node)")
    if ch.embedded and cfg.spill.min_free_disk_mib < ch.min_free_disk_mib // 2:
        # Sharing the data dir's filesystem, the spill must stop before ClickHouse's own reserve.
        raise ConfigError(
            f"spill.min_free_disk_mib = {cfg.spill.min_free_disk_mib}: must be at least half of "
            f"clickhouse.min_free_disk_mib ({ch.min_free_disk_mib}), the space the embedded ClickHouse keeps free"
        )
    ports = {
        "receiver.grpc_port": cfg.receiver.grpc_port,
        "receiver.http_port": cfg.receiver.http_port,
        "query.port": cfg.query.port,
        "metrics.port": cfg.metrics.port,
    }
    if ch.embedded:
        ports["clickhouse.embedded_http_port"] = ch.embedded_http_port
        ports["clickhouse.embedded_tcp_port"] = ch.embedded_tcp_port
    for side in ("receiver", "query"):
        cert, key = getattr(cfg.tls, f"{side}_cert_file"), getattr(cfg.tls, f"{side}_key_file")
        if bool(cert) != bool(key):
            missing = f"tls.{side}_key_file" if cert else f"tls.{side}_cert_file"
            raise ConfigError(f"{missing} = None: TLS needs both a certificate and a key")
        for key_name, path in ((f"tls.{side}_cert_file", cert), (f"tls.{side}_key_file", key)):
            if path and not Path(path).is_file():
                raise ConfigError(f"{key_name} = {path!r}: no such file")
    for entry in cfg.auth.receiver_basic_users + cfg.auth.query_basic_users:
        if ":" not in entry:
            raise ConfigError("auth.*_basic_users = '***': each entry must be user:password")
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise ConfigError(f"{key} = {port}: already used by {seen[port]}")
        seen[port] = key
    _check_tenancy(cfg)


def _check_tenancy(cfg: Config) -> None:
    """Refuse a [tenancy] that contradicts itself or [auth], with one line naming the key."""
    ten, auth = cfg.tenancy, cfg.auth
    for tenant in ten.tenants:
        problem = tenant_id_problem(tenant)
        if problem:
            raise ConfigError(f"tenancy.tenants.{tenant} = {{...}}: not a tenant id ({problem})")
    for name, tenant in ten.credentials.items():
        problem = tenant_id_problem(tenant)
        if problem:
            raise ConfigError(f"tenancy.credentials.{name} = {tenant!r}: not a tenant id ({problem})")
    for where, tenant in [("tenancy.defaults", "")] + [(f"tenancy.tenants.{t}", t) for t in ten.tenants]:
        limits = ten.limits(tenant) if tenant else ten.defaults
        if limits.burst and not limits.rate:
            raise ConfigError(f"{where}.burst = {limits.burst}: a burst needs a rate ({where}.rate)")
    if ten.mode != "credential":
        if ten.credentials:
            raise ConfigError(f"tenancy.credentials = {{...}}: only read with tenancy.mode = 'credential' (it is {ten.mode!r})")
        return
    if auth.receiver_bearer_tokens or auth.receiver_bearer_tokens_file or auth.query_bearer_tokens or auth.query_bearer_tokens_file:
        raise ConfigError("tenancy.mode = 'credential': bearer tokens have no name to map to a tenant; "
                          "use auth.*_basic_users (the user name is the credential's name in tenancy.credentials)")
    if not (auth.receiver_basic_users or auth.receiver_basic_users_file) or not (auth.query_basic_users or auth.query_basic_users_file):
        raise ConfigError("tenancy.mode = 'credential': needs credentials on both sides "
                          "(auth.receiver_basic_users[_file] and auth.query_basic_users[_file])")
    for entry in auth.receiver_basic_users + auth.query_basic_users:
        user = entry.split(":", 1)[0]
        if user not in ten.credentials:
            raise ConfigError(f"tenancy.credentials: the credential {user!r} of [auth] maps to no tenant; "
                              f"add tenancy.credentials.{user} = \"<tenant>\"")
