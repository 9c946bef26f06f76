"""The tenant of each query request, resolved exactly as the receivers resolve it
(``otelingest.tenancy``), and the tenant's query limits (docs/tenancy.md).

``tenant_of`` is what ``common.store_of`` / ``common.cache_of`` bind the store and the result cache
to, so every query of a request reads only its tenant's rows. With tenancy off every request is
tenant ``default`` and no tenant limit applies.

Limits per tenant ([tenancy.defaults] and [tenancy.tenants.<id>]; unset or 0 is no limit):
``max_query_concurrency`` requests in flight at once (one more is answered 429 with Retry-After,
in the API's error format), ``max_query_range_days`` and ``max_query_points`` (a 400 naming the
limit, checked where each API checks its window and steps, over the [query] limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Authenticator
from ..config import DEFAULT_TENANT, Config, TenancyConfig
from ..tenancy import Problem, Tenancy

# Seconds a client over its concurrency is told to wait: queries last about that long.
RETRY_AFTER_S = 1


def tenant_of(request: Request) -> str:
    """The request's tenant (``default`` with tenancy off)."""
    return str(request.scope.get("state", {}).get("tenant", DEFAULT_TENANT))


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The range and points a request may ask for, and the config key each comes from (named in
    the 400 that refuses more)."""

    range_days: int
    range_key: str
    points: int
    points_key: str


def limits_of(request: Request) -> QueryLimits:
    """The request's limits: [query]'s, lowered by its tenant's when tenancy is on."""
    cfg: Config = request.app.state.cfg
    out = QueryLimits(cfg.query.max_range_days, "[query] max_range_days", cfg.query.max_points, "[query] max_points")
    if not cfg.tenancy.enabled:
        return out
    tenant = tenant_of(request)
    lim = cfg.tenancy.limits(tenant)
    where = f"tenancy.tenants.{tenant}" if tenant in cfg.tenancy.tenants else "tenancy.defaults"
    range_days, range_key, points, points_key = out.range_days, out.range_key, out.points, out.points_key
    if lim.max_query_range_days and lim.max_query_range_days < range_days:
        range_days, range_key = lim.max_query_range_days, f"{where}.max_query_range_days of tenant {tenant}"
    if lim.max_query_points and lim.max_query_points < points:
        points, points_key = lim.max_query_points, f"{where}.max_query_points of tenant {tenant}"
    return QueryLimits(range_days, range_key, points, points_key)


def tenant_range_days(request: Request) -> tuple[int, str] | None:
    """The tenant's own range limit (days, key), for the listings that have no [query] limit."""
    cfg: Config = request.app.state.cfg
    if not cfg.tenancy.enabled:
        return None
    # The tenant's own key, not limits_of's: that keeps [query]'s limit when the tenant's is not
    # lower, which for a listing (no [query] limit) would drop the tenant's limit.
    tenant = tenant_of(request)
    days = cfg.tenancy.limits(tenant).max_query_range_days
    if not days:
        return None
    where = f"tenancy.tenants.{tenant}" if tenant in cfg.tenancy.tenants else "tenancy.defaults"
    return days, f"{where}.max_query_range_days of tenant {tenant}"


class TenantMiddleware:
    """Resolves the tenant (401 missing, 400 malformed or disagreeing with the credential) in the
    API's error format, puts it in the request's state, and holds the tenant to its query
    concurrency (429 + Retry-After beyond it: that tenant alone waits)."""

    def __init__(self, app: ASGIApp, tenancy: Tenancy, authenticator: Authenticator, limits: TenancyConfig,
                 render: Callable[[str, int, str, str], Any]) -> None:
        self.app = app
        self.tenancy = tenancy
        self.auth = authenticator
        self.limits = limits
        self.render = render
        # Requests in flight per tenant (one event loop: no lock); a tenant at 0 is dropped.
        self.running: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        authorization = next((v for k, v in pairs if k == "authorization"), None)
        credential = self.auth.identify(authorization) if self.auth.enabled else None
        tenant = self.tenancy.resolve_pairs(pairs, credential)
        if isinstance(tenant, Problem):
            error_type = "unauthorized" if tenant.status == 401 else "bad_data"
            await self.render(scope["path"], tenant.status, error_type, tenant.message)(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        most = self.limits.limits(tenant).max_query_concurrency
        running = self.running.get(tenant, 0)
        if most and running >= most:
            response = self.render(scope["path"], 429, "too_many_requests",
                                   f"tenant {tenant} has {running} queries running, its limit "
                                   f"(max_query_concurrency = {most}); retry after {RETRY_AFTER_S} s")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
        self.running[tenant] = running + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.running[tenant] - 1
            if left:
                self.running[tenant] = left
            else:
                del self.running[tenant]
