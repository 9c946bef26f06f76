"""Who a request's tenant is, and each tenant's ingest rate (docs/tenancy.md).

One place decides the tenant of every request, for the receivers (OTLP/HTTP, OTLP/gRPC, remote
write) and the query APIs alike:

- ``off``: every request is tenant ``default`` (what every row written before tenancy carries);
- ``header``: the ``X-Scope-OrgID`` header (gRPC metadata ``x-scope-orgid``), set by a trusted
  gateway. Missing -> 401 / UNAUTHENTICATED; malformed -> 400 / INVALID_ARGUMENT;
- ``credential``: the tenant of the [auth] credential ([tenancy.credentials], by the credential's
  name, never its secret). A header naming another tenant is a 400, so a misconfigured client
  learns it is not writing where it believes.

The tenant never comes from the payload. Ids follow Mimir's rules (``config.tenant_id_problem``).

The rate limiter is a token bucket per tenant in each receiver worker holding ``rate / workers``
(Mimir's "global" strategy: the kernel spreads connections over the SO_REUSEPORT workers, so each
sees about its share). A request larger than the bucket is let through when the bucket is full and
leaves it in debt, so an oversize batch is not refused forever.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .auth import Authenticator
from .config import DEFAULT_TENANT, TenancyConfig, tenant_id_problem
from .errors import ConfigError

HEADER = "x-scope-orgid"
MAX_RETRY_AFTER_S = 60
# Buckets kept per worker before full (idle) ones are forgotten: header mode lets any client name
# a new tenant, and an idle tenant's bucket is full anyway.
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a request has no tenant: ``status`` 401 or 400, ``grpc`` the matching gRPC code name."""

    status: int
    grpc: str
    message: str


MISSING = Problem(401, "UNAUTHENTICATED", f"missing tenant: send the {HEADER} header")
NO_TENANT_CREDENTIAL = Problem(401, "UNAUTHENTICATED", "the credential maps to no tenant")


def parse_tenant(value: str) -> str | Problem:
    """A tenant id as sent (one header value), or the 400 that refuses it."""
    problem = tenant_id_problem(value)
    if problem is not None:
        return Problem(400, "INVALID_ARGUMENT", f"invalid tenant in {HEADER}: {problem}")
    return value


class Tenancy:
    """Resolves the tenant of one request; built once per process from [tenancy]."""

    def __init__(self, cfg: TenancyConfig, auth: Authenticator | None = None) -> None:
        """``auth`` (the side's authenticator) is checked in credential mode: every credential,
        including those read from files, must map to a tenant.

        Raises:
            ConfigError: a credential of ``auth`` maps to no tenant.
        """
        self.mode = cfg.mode
        self.credentials = dict(cfg.credentials)
        if self.mode == "credential" and auth is not None:
            for name in auth.names():
                if name not in self.credentials:
                    raise ConfigError(f"tenancy.credentials: the credential {name!r} of [auth] maps to no tenant; "
                                      f"add tenancy.credentials.{name} = \"<tenant>\"")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def resolve(self, header: str | None, credential: str | None = None) -> str | Problem:
        """The tenant of a request from its ``X-Scope-OrgID`` value (None when absent) and the
        name of the credential it authenticated with (``Authenticator.identify``)."""
        if self.mode == "off":
            return DEFAULT_TENANT
        if self.mode == "header":
            if header is None or header == "":
                return MISSING
            return parse_tenant(header)
        tenant = self.credentials.get(credential) if credential is not None else None
        if tenant is None:
            return NO_TENANT_CREDENTIAL
        if header is not None and header != "":
            given = parse_tenant(header)
            if isinstance(given, Problem):
                return given
            if given != tenant:
                return Problem(400, "INVALID_ARGUMENT", f"{HEADER} names another tenant than the credential's")
        return tenant

    def resolve_headers(self, headers: Mapping[str, str], credential: str | None = None) -> str | Problem:
        """``resolve`` from lower-cased HTTP headers (or gRPC metadata as a dict)."""
        return self.resolve(headers.get(HEADER), credential)

    def resolve_pairs(self, pairs: Iterable[tuple[str, str]], credential: str | None = None) -> str | Problem:
        """``resolve`` from (lower-cased name, value) pairs: the header sent twice is two tenants,
        refused as ``a|b`` is, not the last one silently."""
        values = [v for k, v in pairs if k == HEADER]
        return self.resolve("|".join(values) if values else None, credential)


class RateLimiter:
    """Per-tenant token buckets of one receiver worker; thread-safe (gRPC threads and the HTTP
    event loop share it)."""

    def __init__(self, cfg: TenancyConfig, workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.workers = max(1, workers)
        self.clock = clock
        self._lock = threading.Lock()
        # tenant -> [tokens, last refill time, rate per second, burst]
        self._buckets: dict[str, list[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled and (bool(self.cfg.defaults.rate) or any(t.rate for t in self.cfg.tenants.values()))

    def _limits(self, tenant: str) -> tuple[float, float]:
        lim = self.cfg.limits(tenant)
        if not lim.rate:
            return 0.0, 0.0
        rate = lim.rate / self.workers
        return rate, float(lim.burst) if lim.burst else max(rate, 1.0)

    def take(self, tenant: str, items: int) -> float:
        """Take ``items`` tokens: 0.0 when allowed, else the seconds after which a retry may pass."""
        with self._lock:
            now = self.clock()
            b = self._buckets.get(tenant)
            if b is None:
                rate, burst = self._limits(tenant)
                if not rate:
                    return 0.0
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_full(now)
                b = self._buckets[tenant] = [burst, now, rate, burst]
            tokens, last, rate, burst = b
            tokens = min(burst, tokens + (now - last) * rate)
            b[1] = now
            if tokens >= items or tokens >= burst:
                b[0] = tokens - items  # an oversize request on a full bucket runs into debt
                return 0.0
            b[0] = tokens
            return (min(items, burst) - tokens) / rate

    def _forget_full(self, now: float) -> None:
        for tenant, (tokens, last, rate, burst) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= burst:
                del self._buckets[tenant]


def retry_after_s(wait: float) -> int:
    """Whole seconds for Retry-After / RetryInfo: at least 1, at most MAX_RETRY_AFTER_S (a deep debt
    would otherwise idle a client for minutes; its next try is checked again anyway)."""
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(wait)))
