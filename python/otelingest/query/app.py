"""The query service's Starlette app: the design's API and the Jaeger, Tempo, Prometheus and Loki APIs.

``create_app(cfg)`` is what the supervisor runs under uvicorn (process title ``otelingest: query``).
The lifespan opens the ClickHouse client pool (read-only user when configured) and puts the store
and result cache on ``app.state``; exception handlers render each API's own error format.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from ..auth import Authenticator
from ..config import Config
from ..tenancy import Tenancy
from .apis import jaeger, loki, native, prometheus, tempo
from .common import JSONResponse
from .errors import QueryError
from .storage.cache import ResultCache
from .storage.pool import ClientPool
from .storage.store import Store, classify_error
from .tenant import TenantMiddleware

log = logging.getLogger(__name__)

_DESIGN_PATHS = ("/api/v1/traces", "/api/v1/metrics", "/api/v1/logs", "/api/v1/services")
# Tempo answers errors as plain text.
_TEMPO_PATHS = ("/api/echo", "/api/status/", "/api/search", "/api/v2/", "/api/metrics/")


def render_error(path: str, status: int, error_type: str, message: str, field: str | None = None) -> Response:
    """The error body each API's clients expect."""
    if path.startswith("/loki/") or path.startswith(_TEMPO_PATHS):
        return PlainTextResponse(message, status_code=status)
    if path.startswith(_DESIGN_PATHS):
        return JSONResponse({"error": {"field": field, "message": message}}, status_code=status)
    if path.startswith("/api/v1/"):
        return JSONResponse({"status": "error", "errorType": error_type, "error": message}, status_code=status)
    if path.startswith("/api/"):
        return JSONResponse(
            {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status, "msg": message}]},
            status_code=status,
        )
    return PlainTextResponse(message, status_code=status)


async def _query_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueryError)
    return render_error(request.url.path, exc.status, exc.error_type, exc.message, getattr(exc, "field", None))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render_error(request.url.path, exc.status_code, "bad_data", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    err = classify_error(exc)
    if not isinstance(err, QueryError) or err.status >= 500:
        log.exception("query failed: %s %s", request.method, request.url.path, exc_info=exc)
    status = getattr(err, "status", 500)
    return render_error(request.url.path, status, getattr(err, "error_type", "internal"), str(err))


class AuthMiddleware:
    """Refuse requests without an accepted ``Authorization`` header ([auth] query_*), 401 in the API's format."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if self.auth.check(header):
            await self.app(scope, receive, send)
            return
        response = render_error(scope["path"], 401, "unauthorized", "authentication required")
        response.headers["WWW-Authenticate"] = self.auth.challenge()
        await response(scope, receive, send)


def create_app(cfg: Config, *, pool: ClientPool | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        p = pool or ClientPool(cfg.clickhouse, read_only=True)
        p.open()
        app.state.cfg = cfg
        app.state.store = Store(p, cfg.query, cfg.retention, cfg.tenancy)
        app.state.cache = ResultCache(cfg.query)
        try:
            yield
        finally:
            if pool is None:
                p.close()

    handlers: dict[Any, Any] = {QueryError: _query_error, HTTPException: _http_error, Exception: _unexpected}
    # The design's POST routes share /api/v1 with Prometheus: they come first. Tempo's
    # /api/traces/{id} answers protobuf and hands JSON requests to Jaeger's: it comes before it.
    routes = [*native.routes, *tempo.routes, *jaeger.routes, *prometheus.routes, *loki.routes]
    auth = Authenticator(cfg.auth, "query")
    middleware = [Middleware(AuthMiddleware, authenticator=auth)] if auth.enabled else []
    tenancy = Tenancy(cfg.tenancy, auth)
    if tenancy.enabled:  # after authentication: the credential names the tenant
        middleware.append(Middleware(TenantMiddleware, tenancy=tenancy, authenticator=auth, limits=cfg.tenancy,
                                     render=render_error))
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers, middleware=middleware)
